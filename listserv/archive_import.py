"""Importing a list's history: past posts from an mbox (a Google Groups or Mailman export,
gzipped or not), an MMDF file or a Maildir, as accepted posts in their threads, with their own
dates, delivering nothing.

Invariants:
- Nothing is delivered: an imported post gets no outbox row and no Discord relay row; it only
  joins the archive (``posting.join_archive``: its thread and its search text).
- Importing the same file twice adds nothing: a post whose Message-ID the list already has is a
  duplicate. A post without a Message-ID gets one derived from its bytes, so it too is
  recognised the second time (``_generated_id``).
- ``accepted_at`` and ``received_at`` are the post's own date (its Date header, else the mbox
  envelope date), so a digest never picks up years of history as this week's news.
- A message that cannot be read (empty, no date at all, or one the database refuses) is counted
  with its position and the reason, never stops the import: each post is its own savepoint.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import mailbox
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from sqlmodel import Session, select

from listserv import names, posting, subscriptions
from listserv.message import add_date, parse, set_message_id
from listserv.models import MailingList, Message, MessageStatus

log = logging.getLogger("commonroom.archive_import")


class ImportProblem(Exception):
    """The file as a whole cannot be imported (the message says what to do)."""


@dataclass(frozen=True)
class Entry:
    position: int  # 1-based, in the file's order
    raw: bytes
    envelope_date: datetime | None  # from the mbox "From " line or the Maildir file name


@dataclass
class Summary:
    imported: int = 0
    duplicates: int = 0
    unreadable: list[tuple[int, str]] = field(default_factory=list)


_BOM = b"\xef\xbb\xbf"


def _envelope_date(from_line: bytes) -> datetime | None:
    """The date of an mbox "From sender  Fri Feb 22 15:06:23 2008" line, as UTC."""
    stamp = " ".join(from_line.decode("latin-1").split()[2:])
    try:
        d = parsedate_to_datetime(stamp)
    except (TypeError, ValueError, IndexError):
        return None
    return (d if d.utcoffset() is not None else d.replace(tzinfo=UTC)).astimezone(UTC)


def _maildir_date(key: str) -> datetime | None:
    """Maildir names start with the delivery time in seconds ("1354801234.M1P2.host")."""
    head = key.split(".", 1)[0]
    return datetime.fromtimestamp(int(head), UTC) if head.isdigit() else None


def _mbox_entries(box: mailbox.mbox | mailbox.MMDF, keys: list[str]) -> Iterator[Entry]:
    for i, key in enumerate(keys, 1):
        data = box.get_bytes(key, from_=True)
        first, _, rest = data.partition(b"\n")
        if first.startswith(b"From "):
            yield Entry(i, rest, _envelope_date(first))
        else:
            yield Entry(i, data, None)


def _maildir_entries(box: mailbox.Maildir, keys: list[str]) -> Iterator[Entry]:
    for i, key in enumerate(keys, 1):
        yield Entry(i, box.get_bytes(key), _maildir_date(key))


@contextmanager
def open_mailbox(path: Path) -> Iterator[tuple[int, Iterator[Entry]]]:
    """The number of messages in ``path`` and an iterator over them, in the file's order."""
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new")):
            raise ImportProblem(f"{path} is a directory but not a Maildir (it has no cur/ and "
                                "new/); give an mbox file or a Maildir directory")
        maildir = mailbox.Maildir(path, factory=None, create=False)
        keys = sorted(maildir.keys(), key=lambda k: (_maildir_date(k) or datetime.min.replace(
            tzinfo=UTC), k))
        yield len(keys), _maildir_entries(maildir, keys)
        return
    original = path  # named in messages; ``path`` may become an unpacked copy
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError as e:
        raise ImportProblem(f"cannot read {path}: {e.strerror}") from None
    with tempfile.TemporaryDirectory(prefix="commonroom-import-") as tmp:
        if head == b"\x1f\x8b":  # gzipped, as Mailman serves its monthly archives
            plain = Path(tmp) / "archive.mbox"
            try:
                with gzip.open(path, "rb") as src, plain.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as e:
                raise ImportProblem(f"{path} looks gzipped but cannot be unpacked ({e})") from None
            path = plain
        with path.open("rb") as f:
            start = f.read(4096)
        if start.startswith(_BOM):  # written by a Windows tool: the first "From " follows it
            unmarked = Path(tmp) / "unmarked.mbox"
            with path.open("rb") as src, unmarked.open("wb") as dst:
                src.read(len(_BOM))
                shutil.copyfileobj(src, dst)
            path, start = unmarked, start[len(_BOM):]
        start = start.lstrip()[:5]  # exports may open with a blank line
        box: mailbox.mbox | mailbox.MMDF
        if start.startswith(b"\x01\x01\x01\x01"):
            box = mailbox.MMDF(path, factory=None, create=False)
        elif start == b"From ":
            box = mailbox.mbox(path, factory=None, create=False)
        else:
            raise ImportProblem(f"{original} is not an mbox (it does not start with a 'From ' line); "
                                "export the archive as mbox (Google Takeout, or Mailman's "
                                "'Downloadable version'), or give a Maildir directory")
        try:
            keys = list(box.keys())
            yield len(keys), _mbox_entries(box, keys)
        finally:
            box.close()


def _generated_id(entry: Entry, domain: str) -> str:
    """A Message-ID for a post that has none, the same on every import of the same file: from
    its bytes and its envelope date (two identical bodies sent at different times are two)."""
    stamp = entry.envelope_date.isoformat() if entry.envelope_date else ""
    digest = hashlib.sha256(entry.raw + b"\0" + stamp.encode()).hexdigest()[:32]
    return f"import.{digest}@{domain or 'localhost.invalid'}"


def import_entry(session: Session, ml: MailingList, entry: Entry, summary: Summary, *,
                 domain: str, source: str) -> None:
    """Import one message into ``ml``, counting it in ``summary``. In its own savepoint."""
    assert ml.id is not None
    if not entry.raw.strip():
        summary.unreadable.append((entry.position, "empty message"))
        return
    parsed = parse(entry.raw, domain=domain)
    date = parsed.date or entry.envelope_date
    if date is None:
        summary.unreadable.append((entry.position, "no readable date"))
        return
    raw = entry.raw
    message_id = parsed.message_id
    if parsed.message_id_generated:
        message_id = _generated_id(entry, domain)
        raw = set_message_id(raw, message_id)
    raw = add_date(raw, date)  # unchanged when it has a Date of its own
    known = session.exec(select(Message.id).where(Message.list_id == ml.id,
                                                  Message.message_id == message_id)).first()
    if known is not None:
        summary.duplicates += 1
        return
    sender = subscriptions.canonical(parsed.from_address or "") or ""
    try:
        with session.begin_nested():
            msg = Message(list_id=ml.id, message_id=message_id, envelope_from=sender,
                          envelope_to=f"{ml.name} (archive import)", from_address=sender,
                          from_name=names.clean(parsed.from_name), subject=parsed.subject,
                          date=date, received_at=date, accepted_at=date, size=len(raw),
                          status=MessageStatus.ACCEPTED.value, reason=f"imported from {source}",
                          raw=raw)
            session.add(msg)
            session.flush()
            posting.join_archive(session, ml, msg, parsed.references)
    except Exception as e:  # one bad post (bytes the database refuses) must not end the import
        log.warning("import into %s: message %d of %s not stored: %s", ml.name, entry.position,
                    source, e, extra={"list": ml.name, "message_id": message_id,
                                      "position": entry.position})
        summary.unreadable.append((entry.position, f"could not be stored ({type(e).__name__})"))
        return
    summary.imported += 1
