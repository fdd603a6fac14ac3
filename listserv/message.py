"""Reading incoming mail: the header facts the list server acts on.

``parse`` runs on every accepted message, so it reads the header block only and never raises:
whatever is wrong with a message becomes a short note in ``ParsedMessage.defects``, and the
message is still stored and judged by the rules. The body's text is ``bodytext``'s job
(``first_text``, ``html_to_text``, ``decode_bytes``: still importable from here).

Invariants of a ``ParsedMessage``:
- ``message_id`` is never empty; it carries no angle brackets, whitespace or control characters
  and is at most ``MAX_ID_LENGTH`` characters. A longer id is replaced by a digest of itself
  (``shorten_id``), the same everywhere, so replies that cite it still thread.
- ``references`` holds the same kind of ids, without duplicates and never ``message_id``; the
  In-Reply-To id, when present, is in it (last, unless References already cited it).
- Text fields are ``str`` with RFC 2047 encoded-words decoded and 8-bit header bytes read as
  UTF-8 (cp1252 if they are not UTF-8); undecodable bytes become U+FFFD, never an exception.
- ``date`` is timezone-aware UTC.

``set_message_id`` and ``add_date`` are the only functions that write: each adds one header line
(a Message-ID, or the Date an MTA adds when the sender gave none) to raw bytes and leaves every
other byte as it was, so signatures (DKIM over other headers) survive.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses, parsedate_to_datetime

from listserv import names
from listserv.addresses import normalise_address

# The body's text lives in bodytext; these names stay importable from here for existing callers.
from listserv.bodytext import decode_bytes as decode_bytes
from listserv.bodytext import first_text as first_text
from listserv.bodytext import html_to_text as html_to_text

MAX_ID_LENGTH = 250  # fits an indexed VARCHAR(255) on every database we run on


@dataclass(frozen=True)
class ParsedMessage:
    """The header facts of one message (see the module docstring for the invariants)."""

    message_id: str
    message_id_generated: bool
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_address: str | None
    from_name: str
    date: datetime | None
    size: int
    defects: tuple[str, ...]
    # Top-level headers in order, unfolded and decoded: for reading and rules, not re-sending.
    headers: tuple[tuple[str, str], ...]

    def get_all(self, name: str) -> list[str]:
        """Values of every header called ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.get_all(name)
        return values[0] if values else None


# --- bytes and encoded-words -------------------------------------------------------------

def _header_text(value: str) -> str:
    # BytesParser keeps 8-bit header bytes as surrogate escapes; RFC 6532 says they are UTF-8.
    if value.isascii():
        return value
    return decode_bytes(value.encode("ascii", "surrogateescape"), None)


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _unfold(value: str) -> str:
    if "\n" not in value and "\r" not in value:  # one line (nearly every field): nothing to do
        return value
    return _FOLD.sub("", value).replace("\r", " ").replace("\n", " ")


_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    payload = text.encode("ascii", "replace")
    if encoding in "Qq":
        return binascii.a2b_qp(payload, header=True)
    for attempt in (payload, payload.rstrip(b"=")):
        try:
            return binascii.a2b_base64(attempt + b"=" * (-len(attempt) % 4))
        except binascii.Error:
            continue
    return None


def decode_header_text(text: str) -> str:
    """Decode RFC 2047 encoded-words in ``text``; malformed words are left as they stand.

    Adjacent words in one charset are joined before decoding, because mailers split multibyte
    characters across words; whitespace between encoded-words is dropped (RFC 2047 6.2).
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    pos = 0
    after_word = False

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending.clear()
            pending_charset = None

    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        if gap and not (after_word and gap.isspace()):
            flush()
            out.append(gap)
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(match.group(0))
            after_word = False
        else:
            charset = match.group(1).lower()
            if charset != pending_charset:
                flush()
                pending_charset = charset
            pending.extend(data)
            after_word = True
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


# --- message ids ---------------------------------------------------------------------------


def shorten_id(message_id: str) -> str:
    """A stable stand-in, within ``MAX_ID_LENGTH``, for an id that is too long to index."""
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256-{digest}@long-id.invalid"


def _clean_id(text: str) -> str | None:
    # Whitespace inside brackets is a folding artefact ("<invalid.   something@bar.net>").
    ident = "".join(text.split()).strip("<>")
    if not ident or not ident.isprintable() or "<" in ident or ">" in ident:
        return None
    return ident if len(ident) <= MAX_ID_LENGTH else shorten_id(ident)


def _bracketed(value: str) -> list[str]:
    """Contents of <...> in order, skipping (comments) and "quoted strings" around them."""
    found: list[str] = []
    depth, i, n = 0, 0, len(value)
    while i < n:
        c = value[i]
        if c == "\\":
            i += 2
            continue
        if depth:
            depth += {"(": 1, ")": -1}.get(c, 0)
        elif c == "(":
            depth = 1
        elif c == '"':
            end = value.find('"', i + 1)
            i = n if end < 0 else end + 1
            continue
        elif c == "<":
            end = value.find(">", i + 1)
            if end < 0:
                break
            found.append(value[i + 1 : end])
            i = end + 1
            continue
        i += 1
    # An unbalanced "(" or '"' can swallow the rest; a plain scan then still finds the ids.
    return found or re.findall(r"<([^<>]*)>", value)


def _msg_ids(value: str, *, single: bool, need_at: bool = True) -> tuple[list[str], bool]:
    """(ids found in a header value, whether they lacked angle brackets).

    Without brackets (LISTSERV writes ids bare) a token counts if it holds "@" (or always,
    without ``need_at``); with ``single`` only a value that is one such token counts, so
    "Your message of ..." yields nothing.
    """
    ids = [i for i in map(_clean_id, _bracketed(value)) if i]
    if ids:
        return ids, False
    bare = value
    for _ in range(3):  # nested comments, a few deep at most in real mail
        bare = re.sub(r"\([^()]*\)", " ", bare)
    tokens = [t for t in re.split(r"[\s,;]+", bare) if t]
    if single and len(tokens) != 1:
        return [], False
    ids = [i for i in map(_clean_id, tokens) if i and '"' not in i and ("@" in i or not need_at)]
    return ids, bool(ids)


# --- From and Date -----------------------------------------------------------------------


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _deobfuscate(addr: str) -> str:
    # Pipermail archives write "user at host"; an address has no spaces, so this is safe.
    return re.sub(r"^\s*(\S+)\s+at\s+(\S+)\s*$", r"\1@\2", addr)


# The plainest From values: ASCII words, one space apart, then "<addr>"; or an addr alone,
# bracketed or not; in an addr, dot-separated runs of letters, digits, "_", "+" and "-".
# Nothing here is special to the address parser, so getaddresses gives the words as the name
# and the address as written (tests/test_message.py compares the two).
_ADDR = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_FROM = re.compile(rf"(?:(?P<name>[A-Za-z0-9]+(?: [A-Za-z0-9]+)*) )?<(?P<addr>{_ADDR})>"
                         rf"|(?P<bare>{_ADDR})")


def _mailboxes(value: str) -> list[tuple[str, str]]:
    """``getaddresses([value])``, without the stdlib parser's Python for the plainest values
    (~20 us a message, on every accepted one)."""
    plain = _PLAIN_FROM.fullmatch(value)
    if plain is not None:
        return [(plain["name"] or "", plain["addr"] or plain["bare"])]
    try:
        return getaddresses([value])
    except Exception:  # the stdlib address parser has raised on hostile input before
        return []


def _parse_from(value: str) -> tuple[str | None, str]:
    """(addr-spec, display name) of the first usable mailbox in a raw From value."""
    pairs = _mailboxes(value)
    for name, addr in pairs:
        # getaddresses glues words together when there are no brackets; an address whose
        # parts are not literally in the header is one of its inventions.
        found = normalise_address(addr) if addr else None
        if found and not all(piece in value.lower() for piece in found.lower().split("@")):
            found = None
        if found:
            return found, _unquote(decode_header_text(name))
    bracket = re.search(r"<([^<>]*)>", value)
    if bracket:
        return normalise_address(_deobfuscate(bracket.group(1))), _unquote(
            decode_header_text(value[: bracket.start()])
        )
    comment = re.search(r"\((.*)\)", value)
    if comment:  # "user at host (Name)"
        outside = value[: comment.start()] + value[comment.end() :]
        return normalise_address(_deobfuscate(outside)), decode_header_text(comment.group(1))
    # LISTSERV: "Name  =?utf-8?b?...?=    user@HOST" with no brackets at all.
    words = value.split()
    for k in range(len(words) - 1, -1, -1):
        found = normalise_address(words[k])
        if found:
            return found, decode_header_text(" ".join(words[:k] + words[k + 1 :]))
    return None, ""


def _parse_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": the zone is unknown, and UTC is the honest guess
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- parse ---------------------------------------------------------------------------------

_STDLIB_DEFECTS = {
    "MissingHeaderBodySeparatorDefect": "a header line without a colon ends the header block",
    "FirstHeaderLineIsContinuationDefect": "first header line is indented",
}


def _header_block(raw: bytes) -> bytes:
    # Only the headers matter here; cutting at the blank line skips scanning a large body.
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return b""
    end = _BLANK_LINE.search(raw)
    return raw if end is None else raw[: end.end()]


_BLANK_LINE = re.compile(rb"\n\r?\n")  # compiled once: twice a post (parse, first_text)


# A well-formed header field (a name as the stdlib parser's headerRE takes it, a colon, the
# rest of the line, any folded lines), and the two fields a reply tree needs.
_FIELD_REST = rb":[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*"
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+" + _FIELD_REST)
_WELL_FORMED = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+" + _FIELD_REST + rb")*(?:\r?\n)?")
_REPLY_FIELD = re.compile(rb"(?im)^(?:in-reply-to|references)" + _FIELD_REST)


def _field(source: bytes) -> tuple[str, str]:
    """What the compat32 parser keeps of a well-formed field (BytesParser's decoding, then
    ``header_source_parse``), then ``_raw_headers``' own treatment."""
    name, value = source.decode("ascii", "surrogateescape").split(":", 1)
    value = value.lstrip(" \t").rstrip("\r\n")
    return _header_text(name).strip(), _unfold(_header_text(value))


def _raw_headers(raw: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, unfolded text value) pairs of the top-level headers, and parser defects.

    When every line of the header block is a well-formed field (nearly all mail), the fields
    are read without the email parser: the same pairs and no defects, for a fraction of the
    CPU (it runs on every accepted message; tests/test_message.py compares the two); anything
    odd gets the full parse, so a malformed line ends the headers as the parser decides."""
    block = _header_block(raw)
    if _WELL_FORMED.fullmatch(block):
        return [_field(m.group(0)) for m in _FIELD.finditer(block)], []
    return _parsed_headers(block)


def _parsed_headers(block: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """``_raw_headers`` by the email package's parser, for any header block."""
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(block)
    except Exception:  # never seen, but a parse that raised would lose an accepted message
        return [], ["header block could not be parsed"]
    items = [(_header_text(k).strip(), _unfold(_header_text(str(v)))) for k, v in msg.raw_items()]
    notes = [_STDLIB_DEFECTS.get(type(d).__name__, type(d).__name__) for d in msg.defects]
    return items, notes


def _values(items: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in items if key.lower() == name]


def _pick_message_id(values: list[str], defects: list[str]) -> str | None:
    if len(values) > 1:
        defects.append("several Message-ID headers")
    for value in values:
        # A lone bare token is the sender's id even without "@" ("Message-Id:102.102").
        ids, bare = _msg_ids(value, single=False)
        if not ids:
            ids, bare = _msg_ids(value, single=True, need_at=False)
        if not ids:
            continue
        if bare:
            defects.append("Message-ID without angle brackets")
        if len(ids) > 1:
            defects.append("several ids in one Message-ID header")
        if ids[0].startswith("sha256-") and ids[0].endswith("@long-id.invalid"):
            defects.append(f"Message-ID longer than {MAX_ID_LENGTH} characters")
        return ids[0]
    defects.append("unusable Message-ID" if values else "no Message-ID")
    return None


def _reply_ids(items: list[tuple[str, str]], message_id: str,
               defects: list[str]) -> tuple[str | None, list[str]]:
    in_reply_to: str | None = None
    for value in _values(items, "in-reply-to"):
        ids, _ = _msg_ids(value, single=True)
        if ids:
            in_reply_to = ids[0]
            break
        defects.append("empty In-Reply-To" if not value.strip() else "In-Reply-To without an id")
    references: list[str] = []
    for value in _values(items, "references"):
        references.extend(_msg_ids(value, single=False)[0])
    if in_reply_to is not None:
        references.append(in_reply_to)
    references = [r for r in dict.fromkeys(references) if r != message_id]
    if in_reply_to == message_id:
        defects.append("In-Reply-To names the message itself")
        in_reply_to = None
    return in_reply_to, references


def reply_ids(raw: bytes, message_id: str) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) of a stored post whose id is ``message_id``, as ``parse``
    reads them, without the rest of ``parse``'s work (the archive's thread pages need only these,
    for every post of a thread). When every line of the header block is a well-formed field,
    only the two fields are read, without the email parser (the same values, a fraction of the
    work: tests/test_message_reply_ids.py compares them); anything odd gets
    the full header parse, so a malformed line ends the headers exactly as it did on arrival."""
    block = _header_block(raw)
    if _WELL_FORMED.fullmatch(block):
        items = [_field(m.group(0)) for m in _REPLY_FIELD.finditer(block)]
    else:
        items, _ = _raw_headers(raw)
    in_reply_to, references = _reply_ids(items, message_id, [])
    return in_reply_to, tuple(references)


def parse(raw: bytes, *, domain: str) -> ParsedMessage:
    """The header facts of ``raw``; ``domain`` names the generated Message-ID if one is needed."""
    items, defects = _raw_headers(raw)

    message_id = _pick_message_id(_values(items, "message-id"), defects)
    generated = message_id is None
    if message_id is None:
        message_id = f"{uuid.uuid4().hex}@{domain.strip().lower() or 'localhost.invalid'}"

    in_reply_to, references = _reply_ids(items, message_id, defects)

    subjects = _values(items, "subject")
    subject = " ".join(decode_header_text(subjects[0]).split()) if subjects else ""

    from_address, from_name = None, ""
    froms = _values(items, "from")
    if froms:
        from_address, from_name = _parse_from(froms[0])
        from_name = names.clean(from_name)
        if from_address is None:
            defects.append("unparseable From")
    else:
        defects.append("no From")

    date = None
    dates = _values(items, "date")
    if dates:
        date = _parse_date(dates[0])
        if date is None:
            defects.append("unparseable Date")
    else:
        defects.append("no Date")

    return ParsedMessage(
        message_id=message_id,
        message_id_generated=generated,
        in_reply_to=in_reply_to,
        references=tuple(references),
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        date=date,
        size=len(raw),
        defects=tuple(dict.fromkeys(defects)),
        headers=tuple((k, decode_header_text(v)) for k, v in items),
    )


def set_message_id(raw: bytes, message_id: str) -> bytes:
    """``raw`` with ``Message-ID: <message_id>`` added as its first header line.

    Every other byte is kept. Raw bytes that already carry a usable id are returned unchanged
    when it is this id; a different one means the caller mixed up messages (ValueError).
    """
    ident = message_id.strip()
    if ident.startswith("<") and ident.endswith(">"):
        ident = ident[1:-1]
    if _clean_id(ident) != ident or not ident.isascii():
        raise ValueError(f"not a usable Message-ID: {message_id!r}")
    existing = _pick_message_id(_values(_raw_headers(raw)[0], "message-id"), [])
    if existing == ident:
        return raw
    if existing is not None:
        raise ValueError(f"message already has Message-ID {existing!r}")
    return _prepend_header(raw, b"Message-ID: <" + ident.encode("ascii") + b">")


def add_date(raw: bytes, received: datetime) -> bytes:
    """``raw`` with ``Date: <received>`` added as its first header line when it has no Date.

    RFC 5322 3.6 requires a Date; an MTA adds the time it received the message (Postfix's
    always_add_missing_headers), and so do we. A Date there is, readable or not, is the
    sender's and is kept: ``raw`` is returned unchanged.
    """
    if received.utcoffset() is None:
        raise ValueError("add_date needs an aware datetime (use listserv.models.utcnow)")
    if _values(_raw_headers(raw)[0], "date"):
        return raw
    stamp = format_datetime(received.astimezone(UTC).replace(microsecond=0))
    return _prepend_header(raw, b"Date: " + stamp.replace("-0000", "+0000").encode("ascii"))


def _prepend_header(raw: bytes, line: bytes) -> bytes:
    """``line`` (without its end) as the first header of ``raw``, in ``raw``'s line ending."""
    first_nl = raw.find(b"\n")
    eol = b"\r\n" if first_nl < 0 or raw[first_nl - 1 : first_nl] == b"\r" else b"\n"
    # An mbox "From " envelope line is not a header; the new header goes below it.
    at = first_nl + 1 if raw.startswith(b"From ") and first_nl >= 0 else 0
    return raw[:at] + line + eol + raw[at:]
