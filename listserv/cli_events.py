"""``commonroom events``: announce an event to a list, list a list's events, see who is coming,
change or cancel one. The decisions and mail are ``listserv.events``'; this module checks what
was typed and prints."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from listserv import discord_events, events
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.event_mail import when_text
from listserv.models import Event, utcnow


@click.group("events")
def events_group() -> None:
    """Events: announce one to a list (with a calendar file), see who is coming."""


def _time(text: str, zone: str, option: str) -> Any:
    value = events.parse_time(text, zone)
    if value is None:
        raise click.BadParameter(f"{text!r} is not a time: write it as 2026-09-03T09:30 "
                                 "(local to --tz) or with an offset, 2026-09-03T09:30+01:00",
                                 param_hint=option)
    return value


def _description(path: str | None) -> str:
    if path is None:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"cannot read {path}: {e}",
                                 param_hint="--description-file") from None


def _event_or_fail(s: Any, event_id: int) -> Event:
    event = events.find(s, event_id)
    if event is None:
        raise click.ClickException(f"there is no event {event_id}: "
                                   "'commonroom events list LIST' shows the ids")
    return event


def _zone(tz: str) -> str:
    problem = events.zone_problem(tz)
    if problem:
        raise click.BadParameter(problem, param_hint="--tz")
    return tz


@events_group.command("add")
@click.argument("list_name", metavar="LIST")
@click.option("--title", required=True, help="What it is called.")
@click.option("--start", required=True, metavar="ISO-TIME", help="When it starts.")
@click.option("--end", required=True, metavar="ISO-TIME", help="When it ends.")
@click.option("--tz", default=None, metavar="ZONE",
              help="Time zone of the times (default: the list's, e.g. Europe/London).")
@click.option("--where", default="", metavar="PLACE-OR-LINK", help="A place or an online link.")
@click.option("--booking-url", default="", metavar="URL", help="Where to book a place.")
@click.option("--capacity", type=click.IntRange(min=1), default=None,
              help="How many can come (a waiting list after that); no limit without it.")
@click.option("--description-file", type=click.Path(dir_okay=False), default=None, metavar="F",
              help="A text file describing the event.")
@pass_ctx
def events_add(obj: Ctx, list_name: str, title: str, start: str, end: str, tz: str | None,
               where: str, booking_url: str, capacity: int | None,
               description_file: str | None) -> None:
    """Create an event on LIST and announce it to the list; prints the new event's id."""
    description = _description(description_file)
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        zone = _zone(tz or ml.timezone)
        draft = events.Draft(title=title.strip(), starts_at=_time(start, zone, "--start"),
                             ends_at=_time(end, zone, "--end"), timezone=zone,
                             location=where.strip(), booking_url=booking_url.strip(),
                             capacity=capacity, description=description)
        now = utcnow()
        problem = events.draft_problem(draft, now)
        if problem:
            raise click.ClickException(problem)
        event = events.create(s, obj.cfg, ml, draft, actor="cli", now=now)
        click.echo(event.id)


@events_group.command("list")
@click.argument("list_name", metavar="LIST")
@pass_ctx
def events_list(obj: Ctx, list_name: str) -> None:
    """Show LIST's coming events: id, when, title, places taken."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        coming = events.upcoming(s, ml.id or 0, utcnow())
        if not coming:
            click.echo(f"no events are coming up on {list_name}")
        for event in coming:
            taken = events.count_attending(s, event.id or 0)
            places = f"{taken}/{event.capacity}" if event.capacity else f"{taken}"
            click.echo(f"{event.id}\t{when_text(event)}\t{event.title}\t{places} coming")


@events_group.command("attendees")
@click.argument("event_id", metavar="ID", type=int)
@pass_ctx
def events_attendees(obj: Ctx, event_id: int) -> None:
    """Who is coming to event ID (for the organisers), then the waiting list, in order."""
    with obj.session() as (_store, s):
        event = _event_or_fail(s, event_id)
        rows = events.attendees(s, event_id)
        if not rows:
            click.echo(f"nobody has said they are coming to event {event_id} ({event.title})")
        for row in rows:
            click.echo(f"{row.email}\t{row.state}\t{row.via}")


@events_group.command("cancel")
@click.argument("event_id", metavar="ID", type=int)
@pass_ctx
def events_cancel(obj: Ctx, event_id: int) -> None:
    """Cancel event ID; everyone coming or waiting is told by mail."""
    with obj.session() as (_store, s):
        event = _event_or_fail(s, event_id)
        if event.state != "scheduled":
            raise click.ClickException(f"event {event_id} is already cancelled")
        told = events.cancel(s, obj.cfg, event, actor="cli", now=utcnow())
        click.echo(f"event {event_id} ({event.title}) is cancelled; {told} told")


@events_group.command("change")
@click.argument("event_id", metavar="ID", type=int)
@click.option("--title", default=None)
@click.option("--start", default=None, metavar="ISO-TIME")
@click.option("--end", default=None, metavar="ISO-TIME")
@click.option("--tz", default=None, metavar="ZONE", help="Zone of --start/--end (and the event).")
@click.option("--where", default=None, metavar="PLACE-OR-LINK")
@click.option("--booking-url", default=None, metavar="URL")
@click.option("--capacity", type=click.IntRange(min=1), default=None)
@click.option("--description-file", type=click.Path(dir_okay=False), default=None, metavar="F")
@pass_ctx
def events_change(obj: Ctx, event_id: int, title: str | None, start: str | None,
                  end: str | None, tz: str | None, where: str | None, booking_url: str | None,
                  capacity: int | None, description_file: str | None) -> None:
    """Change event ID; those coming are told what changed, with an updated calendar file."""
    with obj.session() as (_store, s):
        event = _event_or_fail(s, event_id)
        if event.state != "scheduled":
            raise click.ClickException(f"event {event_id} is cancelled")
        draft = events.as_draft(event)
        zone = _zone(tz or event.timezone)
        changes: dict[str, Any] = {"timezone": zone}
        for key, value in (("title", title), ("location", where),
                           ("booking_url", booking_url), ("capacity", capacity)):
            if value is not None:
                changes[key] = value.strip() if isinstance(value, str) else value
        if start is not None:
            changes["starts_at"] = _time(start, zone, "--start")
        if end is not None:
            changes["ends_at"] = _time(end, zone, "--end")
        if description_file is not None:
            changes["description"] = _description(description_file)
        draft = replace(draft, **changes)
        now = utcnow()
        problem = events.draft_problem(draft, now)
        if problem:
            raise click.ClickException(problem)
        old_start = event.starts_at
        what = events.change(s, obj.cfg, event, draft, actor="cli", now=now)
        click.echo(f"event {event_id}: changed {', '.join(what)}" if what
                   else f"event {event_id}: nothing to change")
        if discord_events.start_kept(event.discord_event_id, old_start, event.starts_at, now):
            click.echo(f"event {event_id}: {discord_events.START_KEPT}")
