"""Scheduled posts: a member's post (a guest post, an announcement) sent to the list later,
once or on every occurrence of a recurrence (``listserv.recurrence``), through the normal
pipeline (``posting.post``), so the participation policy and the other rules still apply and
the post may be held like any other.

Invariants:
- An occurrence goes out once. ``run_due`` moves ``next_at`` on with a conditional UPDATE
  (``WHERE next_at = the occurrence AND state = active``) in the same transaction that posts:
  two schedulers, a retry or a restart cannot send it twice, and a crash sends it never-then-
  once (the post and the move commit together).
- Missed occurrences (the server was down) are not sent one by one: the latest one due is sent
  once, and the next is the first occurrence after now.
- Why one due-items job every minute rather than one APScheduler job per post: the post's row is
  then the only record of when it is due (no second copy in ``apscheduler_jobs`` to keep in
  step when a post is changed or cancelled, or a list's time zone changes), and catching up
  after a restart is one query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlalchemy import update
from sqlmodel import Session, col, select

from listserv import audit, posting, recurrence, subscriptions
from listserv.config import Config
from listserv.lists import list_info
from listserv.message import parse
from listserv.models import (
    Address,
    MailingList,
    Person,
    Role,
    ScheduledPost,
    ScheduledState,
    utcnow,
)
from listserv.notices import WIRE
from listserv.store import Store
from listserv.when import WhenProblem

log = logging.getLogger("commonroom.scheduled")


@dataclass(frozen=True)
class Sent:
    scheduled_id: int
    occurrence: datetime
    action: str  # what the pipeline did: accept, hold, reject, discard


def sender_problem(session: Session, ml: MailingList, address: str) -> str | None:
    assert ml.id is not None
    sub = subscriptions.find_subscription(session, ml.id, address)
    if sub is None or sub.role == Role.NONMEMBER.value:
        return (f"{address} is not a member of {ml.name}: a scheduled post is sent as a member's "
                "post (add them first with 'commonroom members add')")
    return None


def schedule(session: Session, ml: MailingList, *, from_address: str, subject: str, body: str,
             at: datetime, every: str = "", now: datetime, actor: str = "") -> ScheduledPost:
    """Schedule a post at ``at`` (UTC), or at the first occurrence of ``every`` from ``at``.
    Raises ``WhenProblem`` for a bad rule or a time in the past, ``ValueError`` for a sender
    who is not a member."""
    assert ml.id is not None
    address = subscriptions.canonical(from_address)
    if address is None:
        raise ValueError(f"'{from_address}' is not an email address")
    problem = sender_problem(session, ml, address)
    if problem:
        raise ValueError(problem)
    rule = recurrence.parse(every) if every else None
    first = first_time(ml, at, every, now)
    row = ScheduledPost(list_id=ml.id, from_address=address, subject=subject, body=body,
                        rule=rule.text if rule else "", next_at=first, created_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, list_id=ml.id, actor=actor or "cli", action="post-scheduled",
                 target=str(row.id), detail=f"{address} {first.isoformat()} {row.rule}".strip())
    return row


def first_time(ml: MailingList, at: datetime, every: str, now: datetime) -> datetime:
    """When a post scheduled ``at`` (``every``: a rule, or "") first goes out. Raises
    ``WhenProblem`` for a bad rule or a time that has passed."""
    rule = recurrence.parse(every) if every else None
    first = rule.first(at, ml.timezone) if rule else at
    if first <= now:
        raise WhenProblem(f"{first:%Y-%m-%d %H:%M} UTC has passed: give a time in the future")
    return first


def upcoming(session: Session, list_id: int) -> list[ScheduledPost]:
    """The list's active scheduled posts, soonest first."""
    return list(session.exec(select(ScheduledPost).where(
        ScheduledPost.list_id == list_id, ScheduledPost.state == ScheduledState.ACTIVE.value)
        .order_by(col(ScheduledPost.next_at), col(ScheduledPost.id))).all())


def cancel(session: Session, scheduled_id: int, *, actor: str = "") -> ScheduledPost | None:
    row = session.get(ScheduledPost, scheduled_id)
    if row is None or row.state != ScheduledState.ACTIVE.value:
        return None
    row.state = ScheduledState.CANCELLED.value
    session.add(row)
    audit.record(session, list_id=row.list_id, actor=actor or "cli", action="post-unscheduled",
                 target=str(row.id))
    return row


def change(session: Session, ml: MailingList, row: ScheduledPost, *, now: datetime,
           at: datetime | None = None, every: str | None = None, subject: str | None = None,
           body: str | None = None, from_address: str | None = None,
           actor: str = "") -> ScheduledPost:
    """Change an active scheduled post; a new ``at`` or ``every`` recomputes its next time.
    Raises ``ValueError`` for a new sender who is not a member (checked first: nothing is
    changed then), ``WhenProblem`` for a time that has passed."""
    if from_address is not None:
        address = subscriptions.canonical(from_address)
        if address is None:
            raise ValueError(f"'{from_address}' is not an email address")
        if (problem := sender_problem(session, ml, address)) is not None:
            raise ValueError(problem)
        row.from_address = address
    if subject is not None:
        row.subject = subject
    if body is not None:
        row.body = body
    if at is not None or every is not None:
        rule = recurrence.parse(every) if every else None
        if every is None and row.rule:
            rule = recurrence.parse(row.rule)
        start = at or row.next_at
        first = rule.first(start, ml.timezone) if rule else start
        if first <= now:
            raise WhenProblem(f"{first:%Y-%m-%d %H:%M} UTC has passed: give a time in the future")
        row.rule = rule.text if rule else ""
        row.next_at = first
    session.add(row)
    audit.record(session, list_id=row.list_id, actor=actor or "cli", action="post-rescheduled",
                 target=str(row.id),
                 detail=f"{row.from_address} {row.next_at.isoformat()} {row.rule}".strip())
    return row


def compose(session: Session, cfg: Config, ml: MailingList, row: ScheduledPost,
            occurrence: datetime) -> bytes:
    """The post as the member would have sent it, dated at its occurrence. Its Message-ID names
    the occurrence, so a copy that somehow came twice is recognisably the same post."""
    person = session.exec(select(Person).join(Address, col(Address.person_id) == col(Person.id))
                          .where(Address.email == row.from_address)).first()
    msg = EmailMessage(policy=WIRE)
    msg["From"] = formataddr((person.display_name if person else "", row.from_address))
    msg["To"] = list_info(ml, cfg).post_address
    msg["Subject"] = row.subject
    msg["Date"] = format_datetime(occurrence)
    msg["Message-ID"] = (f"<scheduled-{row.id}-{occurrence:%Y%m%dT%H%M}"
                         f"@{cfg.server.domain}>")
    msg.set_content(row.body)
    return msg.as_bytes()


def _send_one(session: Session, cfg: Config, row: ScheduledPost, now: datetime) -> Sent | None:
    assert row.id is not None
    due = occurrence = row.next_at
    rule = recurrence.parse(row.rule) if row.rule else None
    ml = session.get(MailingList, row.list_id)
    assert ml is not None
    following = occurrence
    if rule:
        following = rule.after(occurrence, occurrence, ml.timezone)
        while following <= now:  # missed ones: only the latest goes out
            occurrence, following = following, rule.after(following, following, ml.timezone)
    state = ScheduledState.ACTIVE if rule else ScheduledState.DONE
    claimed = session.execute(update(ScheduledPost).where(
        col(ScheduledPost.id) == row.id, col(ScheduledPost.next_at) == due,
        col(ScheduledPost.state) == ScheduledState.ACTIVE.value).values(
        next_at=following, state=state.value, last_sent_at=occurrence,
        sent_count=col(ScheduledPost.sent_count) + 1))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None  # sent, changed or cancelled by someone else meanwhile
    raw = compose(session, cfg, ml, row, occurrence)
    result = posting.post(session, cfg, ml, raw, parse(raw, domain=cfg.server.domain),
                          envelope_from=row.from_address)
    log.info("scheduled post %s to %s: %s", row.id, ml.name, result.decision.action.value,
             extra={"list": ml.name, "scheduled_id": row.id, "sender": row.from_address,
                    "occurrence": occurrence.isoformat()})
    return Sent(row.id, occurrence, result.decision.action.value)


def run_due(store: Store, cfg: Config, now: datetime | None = None) -> list[Sent]:
    """Send every scheduled post that is due, each in its own transaction."""
    now = now or utcnow()
    with store.session() as s:
        due = list(s.exec(select(ScheduledPost.id).where(
            ScheduledPost.state == ScheduledState.ACTIVE.value,
            col(ScheduledPost.next_at) <= now).order_by(col(ScheduledPost.next_at))).all())
    sent: list[Sent] = []
    for scheduled_id in due:
        try:
            with store.session() as s:
                row = s.get(ScheduledPost, scheduled_id)
                done = _send_one(s, cfg, row, now) if row is not None else None
        except Exception:  # one broken post must not stop the others; retried next minute
            log.exception("scheduled post %s failed", scheduled_id,
                          extra={"scheduled_id": scheduled_id})
            continue
        if done is not None:
            sent.append(done)
    return sent
