"""Events, competition cards and private messages for Discord, queued for the bot's relay
worker (``bot/relay.py``, ``bot/relay_events.py``) whichever door made them: the CLI, email,
the web pages, the scheduler or the bot itself.

- An event created on a bridged list gets an ``event-announce`` row: the bot posts the event's
  card (Attend / Leave) in the bridged channel and, where it has the Manage Events
  permission, makes a Discord scheduled event. A change gets ``event-change`` (the scheduled
  event and the card follow it), a cancellation ``event-cancel`` (the scheduled event is
  cancelled, the card loses its buttons).
- A competition started on a bridged list gets ``comp-card``: its card with an Enter button in
  the bridged channel; at the draw (or when it is called off) ``comp-closed`` takes the button
  off.
- A private message (``dm``: the competition winner told) goes to the Discord account linked
  to the address, when there is one and a bot is configured for the site.

Invariants:
- Queued in the transaction that stores what it announces, so an announcement is neither lost
  nor made for something rolled back; the relay queue writes each row once, in order within
  its list (so a change never overtakes the announcement), across restarts.
- A change or cancellation is queued only for an event announced in Discord.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from listserv import discord_bridge, discord_links
from listserv.config import Config
from listserv.event_mail import when_text
from listserv.models import (
    Competition,
    CompetitionState,
    DiscordRelay,
    Event,
    EventState,
    MailingList,
)

ANNOUNCE, CHANGE, CANCEL = "event-announce", "event-change", "event-cancel"
EVENT_KINDS = (ANNOUNCE, CHANGE, CANCEL)
COMP_CARD, COMP_CLOSED = "comp-card", "comp-closed"
COMP_KINDS = (COMP_CARD, COMP_CLOSED)
DM = "dm"


def card_text(event: Event) -> str:
    """The card's text: what a member needs to decide, with the buttons under it."""
    if event.state == EventState.CANCELLED.value:
        return f"~~**Event {event.id}: {event.title}**~~\nCancelled."
    lines = [f"**Event {event.id}: {event.title}**", when_text(event)]
    if event.location:
        lines.append(event.location)
    if event.capacity:
        lines.append(f"{event.capacity} places (then a waiting list)")
    if event.booking_url:
        lines.append(f"Book: <{event.booking_url}>")
    return "\n".join(lines)


def queue_event(session: Session, cfg: Config, ml: MailingList, event: Event, kind: str, *,
                channel_id: str = "") -> bool:
    """Queue ``kind`` for ``event``: into the list's bridged channel, else ``channel_id`` (where
    ``/event add`` was used); nothing when neither, or (change, cancel) when the event was
    never announced in Discord."""
    assert kind in EVENT_KINDS and event.id is not None
    announced = announcement(session, event.id)
    if kind != ANNOUNCE and announced is None:
        return False
    channel = (announced.channel_id if announced is not None
               else discord_bridge.bridged_channel(cfg, ml.name) or channel_id)
    if not channel:
        return False
    session.add(DiscordRelay(list_id=ml.id, kind=kind, event_id=event.id, channel_id=channel))
    return True


# Discord refuses to move the start of a scheduled event that has started; the relay then
# changes the rest (bot/relay_events.py), and the door that moved the start says so.
START_KEPT = ("its Discord scheduled event has already started, so Discord keeps the old start "
              "time (the card and the mail give the new one)")


def start_kept(discord_event_id: str, old_start: datetime, new_start: datetime,
               now: datetime) -> bool:
    """Whether moving an event's start from ``old_start`` to ``new_start`` will not reach its
    Discord scheduled event: there is one, and it has started (Discord starts an external
    event at its start time)."""
    return bool(discord_event_id) and new_start != old_start and old_start <= now


def announcement(session: Session, event_id: int) -> DiscordRelay | None:
    return session.exec(select(DiscordRelay).where(
        DiscordRelay.event_id == event_id, DiscordRelay.kind == ANNOUNCE)
        .order_by(col(DiscordRelay.id))).first()


@dataclass(frozen=True)
class EventPlan:
    """What the relay writes for an event: the card, the scheduled event's fields, and what
    was written before (the card's message, the scheduled event's id)."""

    event_id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    location: str
    description: str
    cancelled: bool
    card: str
    discord_event_id: str
    card_message_id: str  # "" until the announcement's card is written


def event_plan(session: Session, event_id: int) -> EventPlan | None:
    event = session.get(Event, event_id)
    if event is None:
        return None
    announced = announcement(session, event_id)
    written = announced.discord_message_ids.split() if announced is not None else []
    return EventPlan(event_id, event.title, event.starts_at, event.ends_at, event.location,
                     event.description, event.state == EventState.CANCELLED.value,
                     card_text(event), event.discord_event_id, written[0] if written else "")


def record_scheduled_event(session: Session, relay_id: int, event_id: int,
                           discord_event_id: str) -> None:
    """The announcement's second part: the scheduled event made ("" when not permitted)."""
    event = session.get(Event, event_id)
    row = session.get(DiscordRelay, relay_id)
    assert event is not None and row is not None
    event.discord_event_id = discord_event_id
    row.parts_sent += 1
    session.add(event)
    session.add(row)


def queue_dm(session: Session, cfg: Config, list_id: int | None, address: str,
             content: str) -> bool:
    """Queue a private message to the Discord account linked to ``address``, if any (and a
    bot is configured: ``[discord] guild_id``)."""
    if not cfg.discord.guild_id:
        return False
    user_id = discord_links.linked_user(session, address)
    if user_id is None:
        return False
    session.add(DiscordRelay(list_id=list_id, kind=DM, channel_id=user_id, content=content))
    return True


def competition_card_text(comp: Competition) -> str:
    if comp.state == CompetitionState.CANCELLED.value:
        return f"~~**Competition {comp.id}: win {comp.prize}!**~~ Cancelled: there is no draw."
    if comp.state != CompetitionState.OPEN.value:
        return (f"**Competition {comp.id}: win {comp.prize}!** Closed: the result is in the "
                "competition's thread.")
    return (f"**Competition {comp.id}: win {comp.prize}!** Closes "
            f"<t:{int(comp.closes_at.timestamp())}:F>. Press Enter, or reply in the "
            "competition's thread. Members only, one entry each.")


def _competition_card(session: Session, competition_id: int) -> DiscordRelay | None:
    return session.exec(select(DiscordRelay).where(
        DiscordRelay.competition_id == competition_id, DiscordRelay.kind == COMP_CARD)
        .order_by(col(DiscordRelay.id))).first()


def queue_competition(session: Session, cfg: Config, ml: MailingList, comp: Competition,
                      kind: str, *, channel_id: str = "") -> bool:
    """Queue the competition's card (``comp-card``: into the bridged channel, else
    ``channel_id``), or its closing (``comp-closed``: only when a card was queued)."""
    assert kind in COMP_KINDS and comp.id is not None
    card = _competition_card(session, comp.id)
    if kind == COMP_CLOSED and card is None:
        return False
    channel = (card.channel_id if card is not None
               else discord_bridge.bridged_channel(cfg, ml.name) or channel_id)
    if not channel:
        return False
    session.add(DiscordRelay(list_id=ml.id, kind=kind, competition_id=comp.id,
                             channel_id=channel))
    return True


@dataclass(frozen=True)
class CompetitionPlan:
    competition_id: int
    card: str
    open: bool
    card_message_id: str  # "" until the card is written


def competition_plan(session: Session, competition_id: int) -> CompetitionPlan | None:
    comp = session.get(Competition, competition_id)
    if comp is None:
        return None
    card = _competition_card(session, competition_id)
    written = card.discord_message_ids.split() if card is not None else []
    return CompetitionPlan(competition_id, competition_card_text(comp),
                           comp.state == CompetitionState.OPEN.value,
                           written[0] if written else "")
