"""People's names and organisations: one line of printable text, whichever door they came in by.

Names reach the store from the command line, CSV imports, the From display name of a
subscription by mail (and, later, archive imports, the bot and the web). They end up in From
headers, footers, digests and Discord messages, so each is cleaned once, where it enters, by
``clean``. Delivery cleans again when it builds headers, for rows stored before this existed.

Invariants:
- ``mailbox`` writes a name into an address header so that no reader decodes more than the
  text: a name that is not plain ASCII, or that contains "=?" (which decoders would take for
  an RFC 2047 encoded word and turn into anything, line breaks included), is encoded whole.
- ``clean`` is pure and idempotent; its result has no control characters, no line or paragraph
  separators, no format characters but the joiners some scripts need (ZWJ, ZWNJ), no
  surrogates, no leading, trailing or repeated spaces, and at most ``MAX_LENGTH`` characters.
"""

from __future__ import annotations

import unicodedata
from email.charset import Charset
from email.utils import formataddr

MAX_LENGTH = 200
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ and ZWJ: Persian, Indic scripts, emoji sequences


def _kept(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("Cc", "Zl", "Zp") or ch.isspace():
        return " "  # a break between words stays a break between words
    if category == "Cs" or (category == "Cf" and ch not in _JOINERS):
        # Surrogates cannot be encoded; format characters are invisible, and bidi overrides
        # could reorder what is shown (hiding the "(Acme Ltd, vendor)" mark).
        return ""
    return ch


def clean(text: str) -> str:
    """``text`` as one line of printable text (NFC), at most ``MAX_LENGTH`` characters."""
    text = unicodedata.normalize("NFC", text[: MAX_LENGTH * 4])
    one_line = " ".join("".join(_kept(ch) for ch in text).split())
    return one_line[:MAX_LENGTH].rstrip()


def mailbox(name: str, address: str) -> str:
    """ "Name <address>" for a From or Reply-To header, with ``name`` cleaned, and quoted or
    encoded (see the module's invariants)."""
    name = clean(name)
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        return formataddr((name, address))  # quoted when it has specials
    return f"{Charset('utf-8').header_encode(name)} <{address}>"  # one encoded word, as formataddr
