"""What the services queue for Discord (``listserv.discord_events``): an event's announcement,
change and cancellation on a bridged list (or where ``/event add`` was used), nothing for a
list nobody sees in Discord; a competition's card and its closing; a DM only to a linked
account with a bot configured. And the card texts, and who may make scheduled events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import discord
import pytest
from sqlmodel import col, select

from bot.relay_events import may_schedule, scheduled_changes
from listserv import competitions, discord_events, events
from listserv.config import Config
from listserv.lists import find
from listserv.models import Address, DiscordLink, DiscordRelay, Event, MailingList
from listserv.store import Store
from tests.harness import make_list

CHANNEL = "333333333333333333"
HERE = "555555555555555555"
CFG = replace(Config(), bridges={"demo": CHANNEL})
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
DRAFT = events.Draft(title="Cafe", starts_at=NOW + timedelta(days=3),
                     ends_at=NOW + timedelta(days=3, hours=2), timezone="Europe/London",
                     location="Ripley", capacity=5)


def _kinds(store: Store) -> list[tuple[str, str, int | None]]:
    with store.session() as s:
        return [(r.kind, r.channel_id, r.event_id or r.competition_id) for r in s.exec(
            select(DiscordRelay).where(DiscordRelay.kind != "post").order_by(col(DiscordRelay.id)))]


def _create(store: Store, list_name: str, here: str = "") -> int:
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        event = events.create(s, CFG, ml, DRAFT, actor="t", now=NOW, discord_channel=here)
        assert event.id is not None
        return event.id


@pytest.mark.parametrize(("list_name", "here", "channel"), [
    ("demo", "", CHANNEL),  # bridged: its channel
    ("demo", HERE, CHANNEL),  # bridged wins over where the command was used
    ("quiet", HERE, HERE),  # not bridged, from /event add: where it was used
    ("quiet", "", None),  # not bridged, from the CLI: nothing in Discord
])
def test_announce_change_cancel_queued(store: Store, list_name: str, here: str,
                                       channel: str | None) -> None:
    make_list(store, list_name, members=("ann@example.org",))
    event_id = _create(store, list_name, here)
    with store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None
        events.change(s, CFG, event, replace(DRAFT, title="Cafe two"), actor="t", now=NOW)
        events.cancel(s, CFG, event, actor="t", now=NOW)
    expected = [] if channel is None else [(k, channel, event_id) for k in discord_events.EVENT_KINDS]
    assert _kinds(store) == expected


def test_competition_card_and_closing(store: Store) -> None:
    make_list(store, "demo", members=("ann@example.org",))
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        comp = competitions.start(s, CFG, ml, prize="a mug", closes_at=NOW + timedelta(days=1),
                                  now=NOW)
        cid = comp.id
        assert "Press Enter" in discord_events.competition_card_text(comp)
    with store.session() as s:
        competitions.draw(s, CFG, cid or 0, now=NOW + timedelta(days=1))
    assert _kinds(store) == [("comp-card", CHANNEL, cid), ("comp-closed", CHANNEL, cid)]
    with store.session() as s:
        plan = discord_events.competition_plan(s, cid or 0)
        assert plan is not None and not plan.open and "Closed" in plan.card
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        other = competitions.start(s, CFG, ml, prize="a pen", closes_at=NOW + timedelta(days=1),
                                   now=NOW)
        oid = other.id
    with store.session() as s:
        assert competitions.cancel(s, CFG, oid or 0, actor="t")
        plan = discord_events.competition_plan(s, oid or 0)
        assert plan is not None and not plan.open and "Cancelled" in plan.card
    assert _kinds(store)[2:] == [("comp-card", CHANNEL, oid), ("comp-closed", CHANNEL, oid)]


@pytest.mark.parametrize(("guild", "linked", "queued"), [
    ("111111111111111111", True, True),
    ("111111111111111111", False, False),  # no Discord account to tell
    ("", True, False),  # no bot configured for the site
])
def test_dm_only_to_a_linked_account(store: Store, guild: str, linked: bool,
                                     queued: bool) -> None:
    make_list(store, "demo", members=("ann@example.org",))
    cfg = replace(CFG, discord=replace(CFG.discord, guild_id=guild))
    with store.session() as s:
        if linked:
            person = s.exec(select(Address.person_id).where(
                Address.email == "ann@example.org")).one()
            s.add(DiscordLink(discord_user_id="42", person_id=person))
            s.flush()
        ml = s.exec(select(MailingList)).one()
        assert discord_events.queue_dm(s, cfg, ml.id, "ann@example.org", "You won") is queued
    assert _kinds(store) == ([("dm", "42", None)] if queued else [])


def test_card_text() -> None:
    event = Event(id=7, list_id=1, uid="u", title="Cafe", starts_at=DRAFT.starts_at,
                  ends_at=DRAFT.ends_at, timezone="Europe/London", location="Ripley",
                  capacity=5, booking_url="https://book.example/7")
    assert discord_events.card_text(event).splitlines() == [
        "**Event 7: Cafe**", "Friday 4 January 2030, 12:00 to 14:00 (Europe/London)", "Ripley",
        "5 places (then a waiting list)", "Book: <https://book.example/7>"]
    event.state = "cancelled"
    assert "Cancelled" in discord_events.card_text(event)


@pytest.mark.parametrize(("perms", "starts_in", "may"), [
    (discord.Permissions(administrator=True), 1, True),
    (discord.Permissions(manage_events=True), 1, True),
    (discord.Permissions(create_events=True), 1, True),
    (discord.Permissions(send_messages=True, manage_messages=True), 1, False),
    (discord.Permissions(manage_events=True), 0, False),  # started while the bot was down
    (discord.Permissions(manage_events=True), -1, False),
])
def test_may_schedule(perms: discord.Permissions, starts_in: int, may: bool) -> None:
    assert may_schedule(perms, NOW + timedelta(minutes=starts_in), NOW) is may


@pytest.mark.parametrize("discord_id,old_in,new_in,kept", [
    ("42", -10, 30, True),  # started (Discord started it): its start stays
    ("42", 0, 30, True),
    ("42", 10, 30, False),  # not started: Discord moves it
    ("42", -10, -10, False),  # the start is not being moved
    ("", -10, 30, False),  # no scheduled event in Discord
])
def test_start_kept(discord_id: str, old_in: int, new_in: int, kept: bool) -> None:
    assert discord_events.start_kept(discord_id, NOW + timedelta(minutes=old_in),
                                     NOW + timedelta(minutes=new_in), NOW) is kept


def test_scheduled_changes_ask_discord_only_for_what_it_allows() -> None:
    plan = discord_events.EventPlan(
        7, "Cafe", NOW + timedelta(hours=1), NOW + timedelta(hours=3), "", "Bring cake", False,
        "card", "42", "43")
    started = NOW - timedelta(hours=1)
    assert scheduled_changes(discord.EventStatus.scheduled, plan, started) == {
        "name": "Cafe", "location": "see the announcement", "description": "Event 7: Bring cake",
        "start_time": plan.starts_at, "end_time": plan.ends_at}
    active = scheduled_changes(discord.EventStatus.active, plan, started)
    assert active is not None and "start_time" not in active
    assert active["end_time"] == plan.ends_at and active["name"] == "Cafe"
    # an end before the start Discord keeps cannot be sent either
    early = replace(plan, ends_at=started - timedelta(minutes=1))
    assert "end_time" not in (scheduled_changes(discord.EventStatus.active, early, started) or {})
    assert scheduled_changes(discord.EventStatus.completed, plan, started) is None
    assert scheduled_changes(discord.EventStatus.cancelled, plan, started) is None
