"""``mod_tools.check``: the typed fields of each tool, checked by the services' rules, with
each problem on its field and the values normalised (times as instants). A table of cases,
on a fixed clock, on SQLite and PostgreSQL (a scheduled post's sender must be a member)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listserv import mod_tools
from listserv.config import Config
from listserv.lists import find
from listserv.mod_tools import Tool
from listserv.models import Event
from listserv.store import Store
from tests.harness import make_list

NOW = datetime(2030, 9, 1, 8, 0, tzinfo=UTC)  # a Sunday
MOD, ANN = "mod@council.gov.uk", "ann@council.gov.uk"
EVENT = {"title": "Cafe", "start": "2030-09-03T09:30", "end": "2030-09-03T12:30"}


@pytest.mark.parametrize(("tool", "typed", "errors"), [
    (Tool.EVENT, EVENT, set()),
    (Tool.EVENT, {**EVENT, "title": " "}, {"title"}),
    (Tool.EVENT, {**EVENT, "start": "soon"}, {"start"}),
    (Tool.EVENT, {**EVENT, "end": "2030-09-03T09:00"}, {"end"}),
    (Tool.EVENT, {**EVENT, "start": "2030-08-01T09:00"}, {"start"}),
    (Tool.EVENT, {**EVENT, "timezone": "Mars/Olympus"}, {"timezone"}),
    (Tool.EVENT, {**EVENT, "capacity": "ten", "booking": "ftp://x"}, {"capacity", "booking"}),
    (Tool.EVENT, {**EVENT, "capacity": "0"}, {"capacity"}),
    (Tool.COMPETITION, {"prize": "a mug", "closes": "next Friday 12:00"}, set()),
    (Tool.COMPETITION, {"prize": "", "closes": "2030-08-01T12:00"}, {"prize", "closes"}),
    (Tool.COMPETITION, {"prize": "a mug", "closes": "Friday 12:00", "reserves": "21"},
     {"reserves"}),
    (Tool.SCHEDULE, {"at": "tomorrow 09:00", "subject": "S", "body": "B"}, set()),
    (Tool.SCHEDULE, {"at": "2030-09-02T09:00", "every": "every Monday at 09:00",
                     "from": ANN, "subject": "S", "body": "B"}, set()),
    (Tool.SCHEDULE, {"at": "yesterday", "every": "now and then", "from": "x@y.example"},
     {"at", "every", "from", "subject", "body"}),
    (Tool.SCHEDULE, {"at": "2030-08-30T09:00", "subject": "S", "body": "B"}, {"at"}),
])
def test_check(store: Store, tool: Tool, typed: dict[str, str], errors: set[str]) -> None:
    make_list(store, "demo", moderators=(MOD,), members=(ANN,))
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        checked = mod_tools.check(s, ml, tool, typed, moderator=MOD, now=NOW)
    assert set(checked.errors) == errors, checked.errors
    assert checked.ok is (not errors)


def test_values_are_normalised(store: Store) -> None:
    make_list(store, "demo", moderators=(MOD,), members=(ANN,))
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        event = mod_tools.check(s, ml, Tool.EVENT, EVENT, moderator=MOD, now=NOW).values
        comp = mod_tools.check(s, ml, Tool.COMPETITION, {"prize": "a mug", "closes":
                               "next Friday 12:00"}, moderator=MOD, now=NOW).values
        post = mod_tools.check(s, ml, Tool.SCHEDULE, {"at": "tomorrow 9:00", "every":
                               "every 2nd wednesday at 9:00", "subject": "S", "body": "B\n\n"},
                               moderator=MOD, now=NOW).values
    assert event["start"] == "2030-09-03T09:30:00+01:00" and event["timezone"] == "Europe/London"
    assert comp["closes"] == "2030-09-06T11:00:00+00:00"  # Friday 12:00 BST
    assert post["at"] == "2030-09-02T08:00:00+00:00"
    assert post["every"] == "every second Wednesday at 09:00"
    assert (post["from"], post["body"]) == (MOD, "B")  # from: the moderator by default


@pytest.mark.parametrize(("typed", "errors", "expect"), [
    ({"where": "Library"}, set(), {"where": "Library", "title": "Cafe",
                                   "start": "2030-09-03T09:30:00+01:00"}),
    ({"start": "2030-09-03T10:00", "capacity": ""}, set(),
     {"start": "2030-09-03T10:00:00+01:00", "end": "2030-09-03T12:30:00+01:00", "capacity": ""}),
    ({"end": "2030-09-03T09:00"}, {"end"}, {}),
    ({"title": "", "colour": "blue"}, {"title"}, {}),  # a field no form has is not read
])
def test_check_change_puts_the_typed_fields_over_the_events_own(
        store: Store, typed: dict[str, str], errors: set[str], expect: dict[str, str]) -> None:
    make_list(store, "demo", moderators=(MOD,), members=(ANN,))
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        start, end = (datetime.fromisoformat(t).replace(tzinfo=UTC)
                      for t in ("2030-09-03T08:30", "2030-09-03T11:30"))
        event = Event(list_id=ml.id or 0, uid="u@x", title="Cafe", starts_at=start, ends_at=end,
                      timezone="Europe/London", capacity=5, created_at=NOW)
        checked = mod_tools.check_change(s, ml, event, typed, moderator=MOD, now=NOW)
    assert set(checked.errors) == errors, checked.errors
    assert {k: checked.values[k] for k in expect} == expect


@pytest.mark.parametrize("discord_id,started,note", [
    ("4242", True, True), ("4242", False, False), ("", True, False)])
def test_moving_a_started_discord_event_says_discord_keeps_its_start(
        store: Store, discord_id: str, started: bool, note: bool) -> None:
    make_list(store, "demo", moderators=(MOD,), members=(ANN,))
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        start = NOW - timedelta(minutes=30) if started else NOW + timedelta(days=2)
        event = Event(list_id=ml.id or 0, uid="u@x", title="Cafe", starts_at=start,
                      ends_at=start + timedelta(hours=3), timezone="Europe/London",
                      discord_event_id=discord_id, created_at=NOW)
        s.add(event)
        s.flush()
        typed = {"start": (start + timedelta(hours=1)).isoformat(),
                 "end": (start + timedelta(hours=4)).isoformat()}
        checked = mod_tools.check_change(s, ml, event, typed, moderator=MOD, now=NOW)
        assert checked.ok, checked.errors
        done = mod_tools.change(s, Config(), ml, event, checked.values, actor=MOD, now=NOW)
    assert ("Discord keeps the old start time" in done.message) is note, done.message
