"""What every digest format shares: the types, the member placeholders, small text helpers,
which posts a digest encloses, and text parts cut at the placeholder tokens.

Pure functions; no I/O. Text extraction is ``listserv.bodytext``'s (one copy in the code base).
"""

from __future__ import annotations

import re
import secrets
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from digests.model import Digest, DigestPost, DigestThread
from listserv.bodytext import first_text

PLAIN, MIME, HTML = "plain", "mime", "html"
FORMATS = (PLAIN, MIME, HTML)

UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
DELIVERY_URL = "%%DELIVERY_URL%%"
MEMBER_EMAIL = "%%MEMBER_EMAIL%%"
PLACEHOLDERS = (UNSUBSCRIBE_URL, DELIVERY_URL, MEMBER_EMAIL)

WRAP = 72
MAX_LINE = 998  # RFC 5322 2.1.1, octets excluding the line end
# Posts enclosed in full in a plain or MIME digest, in bytes: the mail stays well under the
# 10 MB many servers accept; the summary and the archive cover the rest.
MAX_ENCLOSED_BYTES = 4 * 1024 * 1024


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class MemberLinks:
    """One member's address and personal links, substituted by :func:`personalise`."""

    email: str
    unsubscribe_url: str
    delivery_url: str

    def values(self) -> dict[str, str]:
        """Placeholder -> value; raises ValueError on a line break or NUL (header injection)."""
        values = {UNSUBSCRIBE_URL: self.unsubscribe_url, DELIVERY_URL: self.delivery_url,
                  MEMBER_EMAIL: self.email}
        for v in values.values():
            if any(c in v for c in "\r\n\0"):
                raise ValueError(f"line break or NUL in a member link: {v!r}")
        return values


@dataclass(frozen=True)
class TextPart:
    """A text/plain or text/html MIME part whose body still holds placeholder tokens.

    ``chunks`` is the UTF-8 body cut at the tokens; ``keys[i]`` is the placeholder between
    ``chunks[i]`` and ``chunks[i + 1]``. ``token_lines`` gives, for each line holding a
    token, its length in bytes without the tokens and the placeholders on it, so that the
    998-byte line limit can be checked per member without scanning the body.
    ``eightbit`` is False when some line is too long anyway: the part is then base64.
    """

    subtype: str
    text: str
    tokens: tuple[tuple[str, str], ...]  # (token in text, public placeholder)
    chunks: tuple[bytes, ...]
    keys: tuple[str, ...]
    token_lines: tuple[tuple[int, tuple[str, ...]], ...]
    eightbit: bool
    description: str = ""
    ascii: bool = False  # every chunk is ASCII (then only the member's values can make it 8bit)


@dataclass(frozen=True)
class Rendered:
    """A digest rendered in one format, built once and personalised per member.

    ``items`` is the message from ``MIME-Version`` to the end: ready-made bytes and
    :class:`TextPart` s. ``text`` is the member-independent plain-text digest (the
    RFC 1153 text for "plain" and "html", the summary and contents for "mime"), with the
    public placeholders in the footer: handy for previews and tests.
    """

    fmt: str
    subject: str
    items: tuple[bytes | TextPart, ...]
    text: str


def digest_subject(digest: Digest) -> str:
    """ "demo Digest, Vol 3, Issue 12" (RFC 1153 style; the caller may add a list tag)."""
    return f"{one_line(digest.list_name)} Digest, Vol {digest.volume}, Issue {digest.number}"


def safe_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL without spaces or controls, else "#"."""
    url = url.strip()
    if not url or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return "#"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "#"
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url
    return "#"


def one_line(s: str) -> str:
    return " ".join(s.split())


def clean_text(text: str) -> str:
    """LF line ends, no NUL or other control characters (tab and form feed stay)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(lambda m: "\f" if m.group() == "\f" else "", text)


def wrap(text: str, indent: str = "", hanging: str = "", width: int = WRAP) -> list[str]:
    """Wrapped lines; ``hanging`` is extra indent for the lines after the first (bullets)."""
    text = one_line(text)
    if not text:
        return []
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + hanging,
                         break_long_words=False, break_on_hyphens=False)


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def post_text(raw: bytes) -> str:
    """The plain text of a post, as the policy and the excerpts read it (``bodytext.first_text``:
    the first text/plain part, or else the first HTML part reduced to text; attachments skipped).
    Line ends become LF, control characters go; leading and trailing blank lines go."""
    return clean_text(first_text(raw)).strip("\n").rstrip()


def ordered_posts(digest: Digest) -> list[tuple[DigestThread, DigestPost]]:
    return [(t, p) for t in digest.active_threads for p in t.posts]


def enclosed_posts(digest: Digest, budget: int) -> tuple[list[tuple[DigestThread, DigestPost]], int]:
    """The posts a plain or MIME digest encloses in full (most active threads first) within
    ``budget`` bytes of posts, and how many are left out: a digest must stay well under the
    10 MB many mail servers accept. The summary and the archive still cover every thread."""
    chosen: list[tuple[DigestThread, DigestPost]] = []
    used = 0
    ordered = ordered_posts(digest)
    for thread, post in ordered:
        if chosen and used + len(post.raw) > budget:
            break
        chosen.append((thread, post))
        used += len(post.raw)
    return chosen, len(ordered) - len(chosen)


def text_part(subtype: str, text: str, tokens: Mapping[str, str], description: str = "") -> TextPart:
    """Cut ``text`` at the tokens (a mapping public placeholder -> token)."""
    text = clean_text(text)
    if not text.endswith("\n"):
        text += "\n"
    by_token = {tok: ph for ph, tok in tokens.items()}
    pattern = re.compile("|".join(re.escape(t) for t in by_token))
    pieces = pattern.split(text)
    chunks = tuple(p.encode("utf-8") for p in pieces)
    keys = tuple(by_token[m.group()] for m in pattern.finditer(text))
    eightbit = True
    token_lines: list[tuple[int, tuple[str, ...]]] = []
    for line in text.split("\n"):
        if "%%" in line:  # every token has them: only these lines need the pattern
            found = [by_token[m.group()] for m in pattern.finditer(line)]
            size = len(pattern.sub("", line).encode("utf-8"))
            if found:
                token_lines.append((size, tuple(found)))
                continue
        elif len(line) * 4 <= MAX_LINE:  # a UTF-8 character is at most 4 bytes
            continue
        else:
            size = len(line.encode("utf-8"))
        if size > MAX_LINE:
            eightbit = False
    return TextPart(subtype=subtype, text=text, tokens=tuple(by_token.items()), chunks=chunks, keys=keys,
                    token_lines=tuple(token_lines), eightbit=eightbit, description=description,
                    ascii=all(c.isascii() for c in chunks))


def boundary(contents: Iterable[bytes]) -> str:
    blobs = list(contents)
    while True:
        b = f"=_commonroom_{secrets.token_hex(12)}"
        if not any(b.encode("ascii") in blob for blob in blobs):
            return b


def new_tokens() -> dict[str, str]:
    nonce = secrets.token_hex(8)
    return {ph: f"{ph[:-2]}.{nonce}%%" for ph in PLACEHOLDERS}


# Pickles written before migration 0007 name these classes as digests.render's, and the
# migration's downgrade writes such pickles again: keep that name whatever module holds them.
Rendered.__module__ = TextPart.__module__ = "digests.render"


@dataclass(frozen=True)
class Frame:
    """What the formats of one render share: the private tokens standing for the member's
    links (public placeholder -> token) and the RFC 1153 preamble and footer, which every
    format shows."""

    digest: Digest
    tokens: Mapping[str, str]
    preamble: str
    footer: str
    budget: int  # bytes of posts enclosed in full

    def publish(self, text: str) -> str:
        """``text`` with the private tokens turned back into the public placeholders."""
        for ph, tok in self.tokens.items():
            text = text.replace(tok, ph)
        return text

    def rendered(self, fmt: str, items: Sequence[bytes | TextPart], text: str) -> Rendered:
        return Rendered(fmt=fmt, subject=digest_subject(self.digest), items=tuple(items),
                        text=self.publish(text))
