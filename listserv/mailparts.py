"""A stored post's parts as the archive shows them: the body to display and the attachments.

Pure functions over raw bytes; no I/O. The numbering is part of the URL form mail and Discord
already carry (``links.attachment_url``): attachment N (from 1) is the Nth non-body part in walk
order, where the walk descends into multipart/* but treats an enclosed message/rfc822 as one part.

Body parts are inline text/plain and text/html leaves (no "attachment" disposition, no file
name); every other leaf is an attachment. The body shown is the first text/plain body part, else
the first text/html one.

Invariants: nothing here raises on hostile MIME (a structure the standard library cannot walk
gives no parts); file names are made safe (``safe_filename``: no path, no control characters,
bounded) and served content types come from ``SERVED_TYPES`` only, everything else as
application/octet-stream.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from urllib.parse import quote

from listserv.bodytext import decode_bytes
from listserv.message import decode_header_text

# Content types served as themselves (always as a download). Anything a browser would run or
# render as a document of our origin (HTML, SVG, XML, scripts) is not here.
SERVED_TYPES = frozenset({
    "application/pdf", "application/zip", "application/gzip", "application/msword",
    "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation", "application/pgp-signature",
    "image/png", "image/jpeg", "image/gif", "image/webp",
    "text/plain", "text/csv", "text/calendar", "message/rfc822",
})
FALLBACK_TYPE = "application/octet-stream"
MAX_FILENAME = 120
_CHARSET = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|]')


@dataclass(frozen=True)
class Attachment:
    number: int  # from 1, as in the URL
    filename: str  # safe to show and to serve
    content_type: str  # as the sender declared it (lower case); see ``served_type``
    size: int  # decoded bytes
    content_id: str  # without angle brackets, "" if none (HTML parts refer to it as cid:)


@dataclass(frozen=True)
class Body:
    text: str
    is_html: bool


def _load(raw: bytes) -> Message | None:
    try:
        return message_from_bytes(raw, policy=compat32)
    except Exception:  # hostile MIME has broken the stdlib parser before
        return None


def _leaves(msg: Message, depth: int = 0) -> Iterator[Message]:
    if msg.is_multipart() and msg.get_content_maintype() == "multipart" and depth < 30:
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _leaves(sub, depth + 1)
        return
    yield msg


def _is_body(part: Message) -> bool:
    return (part.get_content_type() in ("text/plain", "text/html")
            and part.get_content_disposition() != "attachment"
            and not part.get_param("filename", header="content-disposition")
            and not part.get_param("name"))


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            try:
                return inner[0].as_bytes()
            except Exception:
                return b""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _raw_filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:
        return ""
    if isinstance(name, tuple):  # an RFC 2231 value the library left undecoded
        name = decode_bytes(name[2].encode("latin-1", "replace"), name[0] or None)
    return decode_header_text(str(name))


_EXTENSIONS = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html",
               "application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}


def safe_filename(name: str, number: int, content_type: str = "") -> str:
    """A file name safe to show and to put in a Content-Disposition: the last path component,
    without control, format or reserved characters, no leading dots, at most MAX_FILENAME
    characters (the extension kept); "attachment-N" when nothing is left."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    # Breaks and spaces become spaces; other control and format characters (a right-to-left
    # override that turns "gpj.exe" into "exe.jpg" on screen) go.
    name = "".join(" " if ch.isspace() or unicodedata.category(ch) in ("Cc", "Zl", "Zp") else
                   "" if unicodedata.category(ch)[0] == "C" else ch for ch in name)
    name = _UNSAFE_NAME.sub("_", " ".join(name.split())).lstrip(". ")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        name = name[:MAX_FILENAME - len(ext) - 1].rstrip() + ("." + ext if ext else "")
    return name or f"attachment-{number}{_EXTENSIONS.get(content_type, '')}"


def _walk(raw: bytes) -> tuple[list[Message], list[Message]]:
    msg = _load(raw)
    if msg is None:
        return [], []
    bodies: list[Message] = []
    others: list[Message] = []
    try:
        for part in _leaves(msg):
            (bodies if _is_body(part) else others).append(part)
    except Exception:
        return [], []
    return bodies, others


def _attachment(part: Message, number: int, size: int | None = None) -> Attachment:
    ctype = part.get_content_type().lower()
    cid = (part.get("Content-ID") or "").strip().strip("<>")
    return Attachment(number, safe_filename(_raw_filename(part), number, ctype), ctype,
                      len(_payload(part)) if size is None else size, cid[:250])


def _body(bodies: list[Message]) -> Body:
    for wanted in ("text/plain", "text/html"):
        for part in bodies:
            if part.get_content_type() == wanted:
                data = _payload(part)
                return Body(decode_bytes(data, part.get_content_charset()), wanted == "text/html")
    return Body("", False)


@dataclass(frozen=True)
class Parts:
    body: Body
    attachments: list[Attachment]


def read(raw: bytes) -> Parts:
    """The body to show and the attachments, from one parse (what a page needs)."""
    bodies, others = _walk(raw)
    return Parts(_body(bodies), [_attachment(p, n) for n, p in enumerate(others, start=1)])


def attachments(raw: bytes) -> list[Attachment]:
    """The post's attachments, numbered from 1 in walk order."""
    return [_attachment(p, n) for n, p in enumerate(_walk(raw)[1], start=1)]


def attachment_bytes(raw: bytes, number: int) -> tuple[Attachment, bytes] | None:
    """Attachment ``number`` and its decoded bytes, or None when there is no such part."""
    parts = _walk(raw)[1]
    if not 1 <= number <= len(parts):
        return None
    data = _payload(parts[number - 1])
    return _attachment(parts[number - 1], number, len(data)), data


def body(raw: bytes) -> Body:
    """The body to show: the first text/plain body part, else the first text/html one."""
    return _body(_walk(raw)[0])


def served_type(att: Attachment, raw_charset: str | None = None) -> str:
    """The Content-Type to serve ``att`` with: its own if allow-listed, else octet-stream."""
    if att.content_type not in SERVED_TYPES:
        return FALLBACK_TYPE
    if att.content_type.startswith("text/") and raw_charset and _CHARSET.match(raw_charset):
        return f"{att.content_type}; charset={raw_charset}"
    return att.content_type


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and RFC 6266's UTF-8 ``filename*``."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def part_charset(raw: bytes, number: int) -> str | None:
    """The declared charset of attachment ``number`` (for serving text attachments)."""
    parts = _walk(raw)[1]
    if not 1 <= number <= len(parts):
        return None
    charset = parts[number - 1].get_content_charset()
    return charset if isinstance(charset, str) else None
