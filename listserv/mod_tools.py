"""The moderators' three tools (events, competitions, scheduled posts) as forms, for the doors
that take fields as typed text: the web pages (``listserv.web.moderate_tools``) and requests
mailed to LIST-request (``listserv.mod_mail``). The CLI and the bot take typed options and call
the services directly; the rules are the services' own (``events.draft_problems``,
``when.parse``, ``recurrence.parse``, ``scheduled_posts.first_time`` / ``sender_problem``).

Invariants:
- ``check`` changes nothing: it reads the text, asks the services' rules, and returns the
  problems per field (named as the form names them) with the values normalised (times as
  aware ISO 8601 instants), so a phrase such as "next Friday 12:00" means the same instant
  when a mailed request is confirmed hours later.
- ``create`` takes checked values and checks them again (time has passed; a sender may have
  left the list) before the service creates and announces the item.
- A change (``check_change`` / ``change``) is the item's current values as a form shows them
  with the typed ones over them, checked by the same rules as creating; fields not typed stay
  as they are.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from listserv import (
    competitions,
    discord_events,
    events,
    recurrence,
    scheduled_posts,
    subscriptions,
    when,
)
from listserv.config import Config
from listserv.models import (
    Competition,
    CompetitionState,
    Event,
    EventState,
    MailingList,
    ScheduledPost,
    ScheduledState,
)


class Tool(enum.StrEnum):
    EVENT = "event"
    COMPETITION = "competition"
    SCHEDULE = "schedule"


FIELDS: dict[Tool, tuple[str, ...]] = {
    Tool.EVENT: ("title", "start", "end", "timezone", "where", "booking", "capacity",
                 "description"),
    Tool.COMPETITION: ("prize", "how", "closes", "reserves", "exclude_org"),
    Tool.SCHEDULE: ("at", "every", "from", "subject", "body"),
}
# What a change may name (a competition is not changed).
CHANGE_FIELDS: dict[Tool, tuple[str, ...]] = {
    Tool.EVENT: FIELDS[Tool.EVENT], Tool.SCHEDULE: FIELDS[Tool.SCHEDULE]}
# The free text of each tool: in a mailed request, the body after the "Key: value" lines.
TEXT_FIELD = {Tool.EVENT: "description", Tool.COMPETITION: "how", Tool.SCHEDULE: "body"}
MAX_RESERVES = 20  # as ``commonroom competitions start --reserves``
ISO_HINT = "write it as 2026-09-03T09:30 (local to the time zone) or with an offset"


@dataclass(frozen=True)
class Checked:
    tool: Tool
    values: dict[str, str]  # normalised, ready for ``create`` (and for a pending payload)
    errors: dict[str, str] = field(default_factory=dict)  # field -> what is wrong, for a person

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Created:
    ok: bool
    message: str
    item_id: int | None = None


def _typed(tool: Tool, typed: Mapping[str, str]) -> dict[str, str]:
    text = TEXT_FIELD[tool]
    return {name: (typed.get(name) or "").strip() if name != text
            else (typed.get(name) or "").strip("\n").rstrip()
            for name in FIELDS[tool]}


def _event(ml: MailingList, v: dict[str, str], now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    v["timezone"] = v["timezone"] or ml.timezone
    zone = v["timezone"]
    if (problem := events.zone_problem(zone)) is not None:
        errors["timezone"] = problem
        zone = ml.timezone
    times: dict[str, datetime] = {}
    for name in ("start", "end"):
        parsed = events.parse_time(v[name], zone) if v[name] else None
        if parsed is None:
            errors[name] = (f"give the {name} time: {ISO_HINT}" if not v[name]
                            else f"{v[name]!r} is not a time: {ISO_HINT}")
        else:
            times[name] = parsed
            v[name] = parsed.isoformat()
    capacity: int | None = None
    if v["capacity"]:
        try:
            capacity = int(v["capacity"])
        except ValueError:
            errors["capacity"] = "capacity is a number of places (leave it empty for no limit)"
    if len(times) == 2:
        draft = draft_of(v, times["start"], times["end"], capacity)
        for name, problem in events.draft_problems(draft, now):
            errors.setdefault(name, problem)
    elif not v["title"]:
        errors["title"] = "give the event a title"
    return errors


def draft_of(v: Mapping[str, str], start: datetime, end: datetime,
             capacity: int | None) -> events.Draft:
    return events.Draft(title=v["title"], starts_at=start, ends_at=end, timezone=v["timezone"],
                        location=v["where"], booking_url=v["booking"], capacity=capacity,
                        description=v["description"])


def event_draft(values: Mapping[str, str]) -> events.Draft:
    """The event checked ``values`` describe."""
    return draft_of(values, datetime.fromisoformat(values["start"]),
                    datetime.fromisoformat(values["end"]),
                    int(values["capacity"]) if values["capacity"] else None)


def _competition(ml: MailingList, v: dict[str, str], now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not v["prize"]:
        errors["prize"] = "say what the winner gets"
    elif len(v["prize"]) > 200:
        errors["prize"] = "the prize is too long (200 characters at most)"
    try:
        closes = when.parse(v["closes"], ml.timezone, now)
        if closes <= now:
            errors["closes"] = "the closing time has passed: give one in the future"
        v["closes"] = closes.isoformat()
    except when.WhenProblem as e:
        errors["closes"] = str(e)
    try:
        reserves = int(v["reserves"] or "0")
        if not 0 <= reserves <= MAX_RESERVES:
            raise ValueError
        v["reserves"] = str(reserves)
    except ValueError:
        errors["reserves"] = f"reserves is a number from 0 to {MAX_RESERVES}"
    return errors


def _schedule(session: Session, ml: MailingList, v: dict[str, str], moderator: str,
              now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    at: datetime | None = None
    try:
        at = when.parse(v["at"], ml.timezone, now)
        v["at"] = at.isoformat()
    except when.WhenProblem as e:
        errors["at"] = str(e)
    if v["every"]:
        try:
            v["every"] = recurrence.parse(v["every"]).text
        except when.WhenProblem as e:
            errors["every"] = str(e)
    if at is not None and "every" not in errors:
        try:
            scheduled_posts.first_time(ml, at, v["every"], now)
        except when.WhenProblem as e:
            errors["at"] = str(e)
    sender = subscriptions.canonical(v["from"] or moderator)
    if sender is None:
        errors["from"] = f"{v['from']!r} is not an email address"
    else:
        v["from"] = sender
        if (problem := scheduled_posts.sender_problem(session, ml, sender)) is not None:
            errors["from"] = problem
    if not v["subject"]:
        errors["subject"] = "give the post a subject"
    if not v["body"]:
        errors["body"] = "write the post"
    return errors


def check(session: Session, ml: MailingList, tool: Tool, typed: Mapping[str, str], *,
          moderator: str, now: datetime) -> Checked:
    """The typed fields checked; ``moderator`` is who asks (a scheduled post's default
    sender)."""
    values = _typed(tool, typed)
    if tool is Tool.EVENT:
        errors = _event(ml, values, now)
    elif tool is Tool.COMPETITION:
        errors = _competition(ml, values, now)
    else:
        errors = _schedule(session, ml, values, moderator, now)
    return Checked(tool, values, errors)


def create(session: Session, cfg: Config, ml: MailingList, tool: Tool,
           values: Mapping[str, str], *, moderator: str, actor: str, now: datetime) -> Created:
    """Create and announce the item ``values`` describe (as ``check`` left them)."""
    checked = check(session, ml, tool, values, moderator=moderator, now=now)
    if not checked.ok:
        return Created(False, "; ".join(f"{k}: {p}" for k, p in checked.errors.items()))
    v = checked.values
    if tool is Tool.EVENT:
        event = events.create(session, cfg, ml, event_draft(v), actor=actor, now=now)
        return Created(True, f"event {event.id} ({event.title}) is announced to {ml.name}",
                       event.id)
    if tool is Tool.COMPETITION:
        comp = competitions.start(session, cfg, ml, prize=v["prize"],
                                  closes_at=datetime.fromisoformat(v["closes"]), now=now,
                                  how_to_enter=v["how"], reserves=int(v["reserves"]),
                                  exclude_org=v["exclude_org"], actor=actor)
        return Created(True, f"competition {comp.id} ({comp.prize}) is announced to {ml.name}",
                       comp.id)
    row = scheduled_posts.schedule(session, ml, from_address=v["from"], subject=v["subject"],
                                   body=v["body"] + "\n", at=datetime.fromisoformat(v["at"]),
                                   every=v["every"], now=now, actor=actor)
    return Created(True, f"scheduled post {row.id} ({row.subject}) will go to {ml.name} at "
                         f"{local_text(row.next_at, ml.timezone)}", row.id)


def local_text(at: datetime, tz: str) -> str:
    return f"{at.astimezone(when.zone(tz)):%a %d %b %Y %H:%M %Z}"


def summary(tool: Tool, values: Mapping[str, str], tz: str) -> list[str]:
    """``Key: value`` lines saying what will be created, times in ``tz`` (the list's zone)."""
    lines: list[str] = []
    for name in FIELDS[tool]:
        value = values.get(name, "")
        if not value or name == TEXT_FIELD[tool]:
            continue
        if name in ("start", "end", "closes", "at"):
            value = local_text(datetime.fromisoformat(value), tz)
        lines.append(f"{name.replace('_', '-').capitalize()}: {value}")
    text = values.get(TEXT_FIELD[tool], "")
    return lines + (["", *text.splitlines()] if text else [])


# ``events.CHANGEABLE`` (the event's columns) as the forms name them.
FORM_NAMES = {"starts_at": "start", "ends_at": "end", "location": "where",
              "booking_url": "booking"}


def form_time(at: datetime, tz: str) -> str:
    """``at`` as a form shows it: local to ``tz``, without an offset."""
    return f"{at.astimezone(when.zone(tz)):%Y-%m-%dT%H:%M}"


def event_values(event: Event) -> dict[str, str]:
    """An event as its change form shows it: times local to its zone. Pure."""
    return {"title": event.title, "start": form_time(event.starts_at, event.timezone),
            "end": form_time(event.ends_at, event.timezone), "timezone": event.timezone,
            "where": event.location, "booking": event.booking_url,
            "capacity": str(event.capacity or ""), "description": event.description}


def post_values(row: ScheduledPost, tz: str) -> dict[str, str]:
    """A scheduled post as its change form shows it: the next time local to ``tz``. Pure."""
    return {"at": form_time(row.next_at, tz), "every": row.rule, "from": row.from_address,
            "subject": row.subject, "body": row.body.rstrip("\n")}


Changeable = Event | ScheduledPost


def current_values(ml: MailingList, item: Changeable) -> dict[str, str]:
    return event_values(item) if isinstance(item, Event) else post_values(item, ml.timezone)


def check_change(session: Session, ml: MailingList, item: Changeable,
                 typed: Mapping[str, str], *, moderator: str, now: datetime) -> Checked:
    """``item`` with the typed fields (those ``CHANGE_FIELDS`` names) over its current values,
    checked as for creating it."""
    tool = Tool.EVENT if isinstance(item, Event) else Tool.SCHEDULE
    merged = {**current_values(ml, item),
              **{k: v for k, v in typed.items() if k in CHANGE_FIELDS[tool]}}
    return check(session, ml, tool, merged, moderator=moderator, now=now)


def change(session: Session, cfg: Config, ml: MailingList, item: Changeable,
           values: Mapping[str, str], *, actor: str, now: datetime) -> Created:
    """Make ``item`` what ``values`` (as ``check_change`` left them) say; those coming to a
    changed event are told by ``events.change``."""
    if isinstance(item, Event):
        old_start = item.starts_at
        what = events.change(session, cfg, item, event_draft(values), actor=actor, now=now)
        named = ", ".join(FORM_NAMES.get(f, f) for f in what)
        kept = discord_events.start_kept(item.discord_event_id, old_start, item.starts_at, now)
        return Created(True, f"event {item.id} ({item.title}) is changed: {named}"
                       + (f"; {discord_events.START_KEPT}" if kept else "")
                       if what else f"event {item.id} ({item.title}) was already so", item.id)
    scheduled_posts.change(session, ml, item, now=now, at=datetime.fromisoformat(values["at"]),
                           every=values["every"], subject=values["subject"],
                           body=values["body"] + "\n", from_address=values["from"], actor=actor)
    return Created(True, f"scheduled post {item.id} ({item.subject}) will go to {ml.name} at "
                         f"{local_text(item.next_at, ml.timezone)}", item.id)


Item = Event | ScheduledPost | Competition


def open_item(session: Session, ml: MailingList, tool: Tool, item_id: int) -> Item | None:
    """List ``ml``'s item ``item_id`` if it can still be changed or cancelled: a scheduled
    event, an active scheduled post, an open competition."""
    item: Item | None
    if tool is Tool.EVENT:
        item, state = session.get(Event, item_id), EventState.SCHEDULED.value
    elif tool is Tool.SCHEDULE:
        item, state = session.get(ScheduledPost, item_id), ScheduledState.ACTIVE.value
    else:
        item, state = session.get(Competition, item_id), CompetitionState.OPEN.value
    return item if item is not None and item.list_id == ml.id and item.state == state else None


def cancel(session: Session, cfg: Config, item: Item, *, actor: str, now: datetime) -> str:
    """Cancel an open item through its service; what was done, in words."""
    if isinstance(item, Event):
        told = events.cancel(session, cfg, item, actor=actor, now=now)
        return f"event {item.id} ({item.title}) is cancelled; {told} told"
    if isinstance(item, ScheduledPost):
        scheduled_posts.cancel(session, item.id or 0, actor=actor)
        return f"scheduled post {item.id} ({item.subject}) is cancelled"
    competitions.cancel(session, cfg, item.id or 0, actor=actor)
    return f"competition {item.id} ({item.prize}) is cancelled"
