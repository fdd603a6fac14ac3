"""A post's attachments: the parts that are not its body, numbered as the archive links them.

Pure; no I/O. The Discord bridge lists them with links of the form
``links.attachment_url(..., number)``, and the archive serves the same numbers, so both must
count the same way: ``number`` runs from 1 over the leaf parts in ``Message.walk()`` order that
are not body text.

A leaf part is body text when it is inline ``text/plain`` or ``text/html`` with no file name
(the body itself, its HTML alternative, or more inline text); every other leaf part is an
attachment, including inline images of an HTML body. Hostile MIME gives what could be read
before the walker broke, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

__all__ = ["Attachment", "attachments"]


@dataclass(frozen=True)
class Attachment:
    number: int  # from 1, in walk order of the non-body parts
    filename: str  # "" when the part has none
    content_type: str
    size: int  # decoded bytes


def _is_body_text(part: Message) -> bool:
    return (part.get_content_type() in ("text/plain", "text/html")
            and part.get_content_disposition() != "attachment"
            and not part.get_filename())


def _size(part: Message) -> int:
    payload = part.get_payload(decode=True)
    return len(payload) if isinstance(payload, bytes) else 0


def attachments(source: bytes | Message) -> list[Attachment]:
    found: list[Attachment] = []
    try:
        msg = source if isinstance(source, Message) else message_from_bytes(source, policy=compat32)
        for part in msg.walk():
            if part.is_multipart() or _is_body_text(part):
                continue
            try:
                filename = part.get_filename() or ""
            except (LookupError, ValueError, UnicodeError):
                filename = ""
            found.append(Attachment(len(found) + 1, " ".join(str(filename).split()),
                                    part.get_content_type(), _size(part)))
    except Exception:  # hostile MIME has broken the stdlib walker before; keep what was found
        pass
    return found
