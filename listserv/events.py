"""Events a list's moderators announce, and who is coming (issue 10).

Invariants:
- Only members of the event's list may attend; beyond ``capacity`` they join a waiting list,
  in the order they asked (``EventAttendee.id``). When someone attending leaves, the first on
  the waiting list moves up in the same transaction and is told by mail.
- Every function takes ``now``: tests run on a fixed clock, and nothing here reads the time.
- An event is announced once, as a post from the list through ``posting.release`` (stored,
  archived, threaded, personalised per member by delivery); changes and cancellations are told
  to those attending and waiting, by notices through the outbox.
- ``reminded_at`` is set in the transaction that queues the reminders, so each event's
  day-before reminder goes once, whatever restarts happen around it.
- Every change is in the audit log (who, which event, which member, by which door).
- Creating, changing and cancelling queue the event's Discord side (``discord_events``) in
  the same transaction, whichever door called.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func
from sqlmodel import Session, col, select

from listserv import audit, discord_events, event_mail, outbox, subscriptions
from listserv.addresses import Kind
from listserv.config import Config
from listserv.lists import list_info
from listserv.message import parse
from listserv.models import (
    AttendeeState,
    Event,
    EventAttendee,
    EventState,
    MailingList,
    Message,
    MessageStatus,
)
from listserv.posting import release

REMIND_BEFORE = timedelta(days=1)


@dataclass(frozen=True)
class Draft:
    """An event as the organisers describe it; times are aware (any zone)."""

    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    location: str = ""
    booking_url: str = ""
    capacity: int | None = None
    description: str = ""


def zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a time zone: use a name such as Europe/London"
    return None


def parse_time(text: str, zone: str) -> datetime | None:
    """An ISO 8601 time; one without an offset is in ``zone`` (the organisers' local time)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


def draft_problems(draft: Draft, now: datetime) -> list[tuple[str, str]]:
    """What is wrong with ``draft``, as (field, problem said for a person) pairs; the field is
    the form's name for it (title, timezone, start, end, capacity, booking)."""
    found: list[tuple[str, str]] = []
    if not draft.title.strip():
        found.append(("title", "give the event a title"))
    elif len(draft.title) > 200:
        found.append(("title", "the title is too long (200 characters at most)"))
    if (problem := zone_problem(draft.timezone)) is not None:
        found.append(("timezone", problem))
    if draft.ends_at <= draft.starts_at:
        found.append(("end", "the event must end after it starts"))
    if draft.starts_at <= now:
        found.append(("start", "the event must start in the future"))
    if draft.capacity is not None and draft.capacity < 1:
        found.append(("capacity", "capacity must be at least 1 (leave it out for no limit)"))
    if draft.booking_url and not draft.booking_url.startswith(("https://", "http://")):
        found.append(("booking", "the booking link must start with https:// or http://"))
    return found


def draft_problem(draft: Draft, now: datetime) -> str | None:
    """What is wrong with ``draft``, said for a person, or None."""
    found = draft_problems(draft, now)
    return found[0][1] if found else None


class Answer(enum.StrEnum):
    """What asking to attend came to."""

    ATTENDING = "attending"
    WAITING = "waiting"
    ALREADY_ATTENDING = "already-attending"
    ALREADY_WAITING = "already-waiting"
    NOT_MEMBER = "not-member"
    CLOSED = "closed"  # cancelled, or already started


def decide_attend(*, member: bool, open_: bool, current: str | None, capacity: int | None,
                  attending: int) -> Answer:
    """Pure: the answer to "may I come?" from the facts."""
    if not open_:
        return Answer.CLOSED
    if not member:
        return Answer.NOT_MEMBER
    if current == AttendeeState.ATTENDING.value:
        return Answer.ALREADY_ATTENDING
    if current == AttendeeState.WAITING.value:
        return Answer.ALREADY_WAITING
    if capacity is None or attending < capacity:
        return Answer.ATTENDING
    return Answer.WAITING


MESSAGES = {
    Answer.ATTENDING: "{email} is coming to event {id} ({title})",
    Answer.WAITING: "event {id} ({title}) is full: {email} is on the waiting list and will be "
                    "told by mail if a place comes free",
    Answer.ALREADY_ATTENDING: "{email} is already coming to event {id} ({title})",
    Answer.ALREADY_WAITING: "{email} is already on the waiting list for event {id} ({title})",
    Answer.NOT_MEMBER: "only members of the list can attend event {id}: {email} is not one",
    Answer.CLOSED: "event {id} ({title}) is cancelled or has already started",
}


@dataclass(frozen=True)
class AttendResult:
    answer: Answer
    message: str

    @property
    def ok(self) -> bool:
        return self.answer not in (Answer.NOT_MEMBER, Answer.CLOSED)


def find(session: Session, event_id: int) -> Event | None:
    return session.get(Event, event_id)


def is_open(event: Event, now: datetime) -> bool:
    return event.state == EventState.SCHEDULED.value and event.starts_at > now


def upcoming(session: Session, list_id: int, now: datetime) -> list[Event]:
    """The list's events that have not ended and are not cancelled, soonest first."""
    return list(session.exec(select(Event).where(
        Event.list_id == list_id, Event.state == EventState.SCHEDULED.value,
        col(Event.ends_at) > now).order_by(col(Event.starts_at), col(Event.id))).all())


def attendees(session: Session, event_id: int) -> list[EventAttendee]:
    """Those coming, then the waiting list, each in the order they asked."""
    rows = session.exec(select(EventAttendee).where(EventAttendee.event_id == event_id)
                        .order_by(col(EventAttendee.id))).all()
    return sorted(rows, key=lambda r: r.state != AttendeeState.ATTENDING.value)


def count_attending(session: Session, event_id: int) -> int:
    return int(session.exec(select(func.count()).select_from(EventAttendee).where(
        EventAttendee.event_id == event_id,
        EventAttendee.state == AttendeeState.ATTENDING.value)).one())


def _row(session: Session, event_id: int, email: str) -> EventAttendee | None:
    return session.exec(select(EventAttendee).where(
        EventAttendee.event_id == event_id, EventAttendee.email == email)).first()


def _lock(session: Session, event_id: int) -> None:
    """Serialise changes to one event's places (PostgreSQL; SQLite has one writer anyway), so
    two people asking at once cannot both take the last place."""
    session.exec(select(Event.id).where(Event.id == event_id).with_for_update())


def _list(session: Session, event: Event) -> MailingList:
    ml = session.get(MailingList, event.list_id)
    assert ml is not None
    return ml


def _notify(session: Session, cfg: Config, ml: MailingList, to: str, payload: bytes) -> None:
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=to,
                          sender=info.address(Kind.BOUNCES), payload=payload)


def create(session: Session, cfg: Config, ml: MailingList, draft: Draft, *, actor: str,
           now: datetime, discord_channel: str = "") -> Event:
    """Store the event and announce it to the list, and in Discord (the bridged channel, else
    ``discord_channel``). The caller checked ``draft_problem``."""
    assert ml.id is not None
    event = Event(list_id=ml.id, uid=f"{uuid.uuid4()}@{cfg.server.domain}", title=draft.title,
                  starts_at=draft.starts_at, ends_at=draft.ends_at, timezone=draft.timezone,
                  location=draft.location, booking_url=draft.booking_url,
                  capacity=draft.capacity, description=draft.description, created_by=actor,
                  created_at=now)
    session.add(event)
    session.flush()
    assert event.id is not None
    event.message_pk = announce(session, cfg, ml, event, now=now)
    session.add(event)
    discord_events.queue_event(session, cfg, ml, event, discord_events.ANNOUNCE,
                               channel_id=discord_channel)
    audit.record(session, list_id=ml.id, actor=actor, action="event-created",
                 target=f"event {event.id}", detail=f"{event.title} at {event.starts_at}")
    return event


def announce(session: Session, cfg: Config, ml: MailingList, event: Event, *,
             now: datetime) -> int:
    """Post the announcement from the list itself, the way an accepted post goes out."""
    assert ml.id is not None
    info = list_info(ml, cfg)
    raw = event_mail.announcement(info, event, now=now)
    parsed = parse(raw, domain=cfg.server.domain)
    msg = Message(list_id=ml.id, message_id=parsed.message_id, envelope_from=info.post_address,
                  envelope_to=info.post_address, from_address=info.post_address,
                  from_name=parsed.from_name, subject=parsed.subject, date=parsed.date,
                  size=parsed.size, status=MessageStatus.ACCEPTED.value,
                  reason="event announcement", raw=raw)
    session.add(msg)
    session.flush()
    assert msg.id is not None
    # Delivery personalises only posts an event names: link it before anything is sent.
    event.message_pk = msg.id
    session.add(event)
    session.flush()
    release(session, cfg, ml, msg, parsed)
    return msg.id


def attend(session: Session, cfg: Config, event: Event, email: str, *, via: str,
           now: datetime) -> AttendResult:
    """``email`` asks to come (the door has already checked it is really them)."""
    assert event.id is not None
    address = subscriptions.canonical(email) or email
    _lock(session, event.id)
    current = _row(session, event.id, address)
    answer = decide_attend(
        member=subscriptions.is_member(session, event.list_id, address),
        open_=is_open(event, now), current=current.state if current else None,
        capacity=event.capacity, attending=count_attending(session, event.id))
    if answer in (Answer.ATTENDING, Answer.WAITING):
        session.add(EventAttendee(event_id=event.id, email=address, state=answer.value,
                                  via=via, created_at=now))
        audit.record(session, list_id=event.list_id, actor=address, action=f"event-{answer}",
                     target=f"event {event.id}", detail=f"via {via}")
    return AttendResult(answer, MESSAGES[answer].format(email=address, id=event.id,
                                                        title=event.title))


def leave(session: Session, cfg: Config, event: Event, email: str, *, via: str,
          now: datetime) -> str:
    """``email`` is no longer coming; the first on the waiting list takes a freed place."""
    assert event.id is not None
    address = subscriptions.canonical(email) or email
    _lock(session, event.id)
    row = _row(session, event.id, address)
    if row is None:
        return f"{address} was not on the list for event {event.id} ({event.title})"
    was_attending = row.state == AttendeeState.ATTENDING.value
    session.delete(row)
    session.flush()
    audit.record(session, list_id=event.list_id, actor=address, action="event-left",
                 target=f"event {event.id}", detail=f"via {via}")
    if was_attending and is_open(event, now):
        fill_places(session, cfg, event)
    return f"{address} is no longer on the list for event {event.id} ({event.title})"


def fill_places(session: Session, cfg: Config, event: Event) -> list[str]:
    """Move people up from the waiting list while there are places; tell each of them."""
    assert event.id is not None
    ml = _list(session, event)
    info = list_info(ml, cfg)
    moved: list[str] = []
    free = (None if event.capacity is None
            else event.capacity - count_attending(session, event.id))
    waiting = session.exec(select(EventAttendee).where(
        EventAttendee.event_id == event.id, EventAttendee.state == AttendeeState.WAITING.value)
        .order_by(col(EventAttendee.id))).all()
    for row in waiting:
        if free is not None and free <= 0:
            break
        row.state = AttendeeState.ATTENDING.value
        session.add(row)
        moved.append(row.email)
        free = None if free is None else free - 1
        _notify(session, cfg, ml, row.email, event_mail.moved_up(info, event, row.email))
        audit.record(session, list_id=event.list_id, actor="events", action="event-moved-up",
                     target=f"event {event.id}", detail=row.email)
    return moved


def cancel(session: Session, cfg: Config, event: Event, *, actor: str, now: datetime) -> int:
    """Cancel ``event`` and tell everyone attending or waiting; returns how many were told."""
    event.state = EventState.CANCELLED.value
    event.sequence += 1
    session.add(event)
    ml = _list(session, event)
    info = list_info(ml, cfg)
    told = 0
    for row in attendees(session, event.id or 0):
        _notify(session, cfg, ml, row.email, event_mail.cancelled(info, event, row.email, now=now))
        told += 1
    discord_events.queue_event(session, cfg, ml, event, discord_events.CANCEL)
    audit.record(session, list_id=event.list_id, actor=actor, action="event-cancelled",
                 target=f"event {event.id}", detail=f"{told} told")
    return told


CHANGEABLE = ("title", "starts_at", "ends_at", "timezone", "location", "booking_url",
              "capacity", "description")


def change(session: Session, cfg: Config, event: Event, draft: Draft, *, actor: str,
           now: datetime) -> list[str]:
    """Make ``event`` what ``draft`` says; tell those attending what changed. Returns the names
    of the fields that changed (nothing is sent when none did)."""
    what = [f for f in CHANGEABLE if getattr(event, f) != getattr(draft, f)]
    if not what:
        return []
    for field in what:
        setattr(event, field, getattr(draft, field))
    event.sequence += 1
    if event.starts_at - now > REMIND_BEFORE:
        event.reminded_at = None  # moved later: the reminder is due again
    session.add(event)
    session.flush()
    ml = _list(session, event)
    info = list_info(ml, cfg)
    for row in attendees(session, event.id or 0):
        if row.state == AttendeeState.ATTENDING.value:
            _notify(session, cfg, ml, row.email,
                    event_mail.changed(info, event, row.email, ", ".join(what), now=now))
    if "capacity" in what:
        fill_places(session, cfg, event)
    discord_events.queue_event(session, cfg, ml, event, discord_events.CHANGE)
    audit.record(session, list_id=event.list_id, actor=actor, action="event-changed",
                 target=f"event {event.id}", detail=", ".join(what))
    return what


def as_draft(event: Event) -> Draft:
    return Draft(title=event.title, starts_at=event.starts_at, ends_at=event.ends_at,
                 timezone=event.timezone, location=event.location,
                 booking_url=event.booking_url, capacity=event.capacity,
                 description=event.description)


def send_reminders(session: Session, cfg: Config, now: datetime) -> int:
    """Queue the day-before reminder for every event starting within ``REMIND_BEFORE`` that
    has not had one; returns how many mails were queued."""
    due = session.exec(select(Event).where(
        Event.state == EventState.SCHEDULED.value, col(Event.reminded_at).is_(None),
        col(Event.starts_at) > now, col(Event.starts_at) <= now + REMIND_BEFORE)
        .with_for_update(skip_locked=True)).all()
    queued = 0
    for event in due:
        ml = _list(session, event)
        info = list_info(ml, cfg)
        event.reminded_at = now
        session.add(event)
        told = [row.email for row in attendees(session, event.id or 0)
                if row.state == AttendeeState.ATTENDING.value]
        for email in told:
            _notify(session, cfg, ml, email, event_mail.reminder(info, event, email))
        queued += len(told)
        audit.record(session, list_id=event.list_id, actor="scheduler",
                     action="event-reminded", target=f"event {event.id}",
                     detail=f"{len(told)} told")
    return queued
