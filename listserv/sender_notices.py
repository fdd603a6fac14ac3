"""Notices to a post's sender (held, rejected): whether one may go, and a record of those sent.

A post's From address can be forged, so every notice to it may land on a stranger
(backscatter). Hence:

Invariants:
- None goes to automatic mail (null envelope sender, Auto-Submitted, Precedence bulk/list…, a
  loop), to a banned address, or to a post whose DMARC check failed (our MTA's verdict in
  Authentication-Results: the From domain says the post is not from it).
- At most ``PER_DAY`` such notices per address per day, over all lists; a moderator's own
  rejection is a person's decision and is not counted against the limit.
- ``may_notify`` is pure; ``notify`` records what it sends in ``sender_notice`` (the caller's
  transaction), and ``prune`` drops records older than a day.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser

from sqlalchemy import Table, delete, func, insert
from sqlmodel import Session, col, select

from listserv import outbox, subscriptions
from listserv.models import OutboxPriority, SenderNotice, utcnow
from listserv.outbox import OUTBOX
from listserv.rules import automatic_mail

log = logging.getLogger("commonroom.notices")

PER_DAY = 1
WINDOW = timedelta(days=1)
SENDER_NOTICE: Table = SenderNotice.__table__  # type: ignore[attr-defined]
_DMARC_FAIL = re.compile(r"(?:^|[;\s])dmarc\s*=\s*fail\b", re.IGNORECASE)


@dataclass(frozen=True)
class SenderFacts:
    """What decides whether a post's sender may be written to."""

    automatic: bool  # automatic mail by any of its marks
    banned: bool
    dmarc_failed: bool
    sent_last_day: int  # notices already sent to this address in the last day
    by_a_person: bool = False  # a moderator's own decision (not counted against the limit)


def may_notify(f: SenderFacts) -> str | None:
    """None when a notice may go; otherwise why not. Pure."""
    if f.automatic:
        return "automatic mail is never answered"
    if f.banned:
        return "the address is banned"
    if f.dmarc_failed:
        return "the post failed its DMARC check, so its From is likely forged"
    if not f.by_a_person and f.sent_last_day >= PER_DAY:
        return f"{f.sent_last_day} notice(s) already sent to this address today"
    return None


def marks(raw: bytes, envelope_from: str) -> tuple[bool, bool]:
    """(automatic, dmarc_failed) read from a stored post's headers. Pure."""
    headers = BytesHeaderParser().parsebytes(raw)
    automatic = bool(automatic_mail(null_sender=not envelope_from,
                                    auto_submitted=str(headers.get("Auto-Submitted", "")),
                                    precedence=str(headers.get("Precedence", ""))))
    failed = any(_DMARC_FAIL.search(str(v)) for v in headers.get_all("Authentication-Results", []))
    return automatic, failed


def sent_last_day(session: Session, address: str, now: datetime) -> int:
    return int(session.exec(select(func.count()).select_from(SenderNotice).where(
        SenderNotice.address == address, col(SenderNotice.sent_at) > now - WINDOW)).one())


def notify(session: Session, *, list_id: int | None, address: str, kind: str, sender: str,
           payload: bytes | Callable[[], bytes], raw: bytes, envelope_from: str, now: datetime,
           automatic: bool = False, by_a_person: bool = False,
           priority: OutboxPriority = OutboxPriority.NOTICE) -> bool:
    """Queue ``payload`` to a post's sender if ``may_notify`` allows; True when queued.
    ``payload`` may be a function making it: most senders of a flood are told once a day, so
    most notices are never built."""
    auto_marked, dmarc_failed = marks(raw, envelope_from)
    facts = SenderFacts(automatic=automatic or auto_marked,
                        banned=subscriptions.is_banned(session, list_id, address, now),
                        dmarc_failed=dmarc_failed,
                        sent_last_day=sent_last_day(session, address, now),
                        by_a_person=by_a_person)
    why_not = may_notify(facts)
    if why_not is not None:
        log.info("no %s notice to %s: %s", kind, address, why_not,
                 extra={"list_id": list_id, "recipient": address, "why": why_not})
        return False
    # Core statements, not ORM objects: nothing left to flush at the next post's query (a
    # flood's held posts each come here; issue 12).
    session.execute(insert(OUTBOX), [outbox.notice_row(
        list_id=list_id, recipient=address, sender=sender, priority=priority, now=utcnow(),
        payload=payload() if callable(payload) else payload)])
    session.execute(insert(SENDER_NOTICE).values(address=address, list_id=list_id, kind=kind,
                                                 sent_at=now))
    return True


def prune(session: Session, now: datetime) -> None:
    """Forget notices older than the window (they no longer count)."""
    session.execute(delete(SenderNotice).where(col(SenderNotice.sent_at) <= now - WINDOW))
