"""The events service's pure parts: attending decisions, drafts, times (a table of cases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listserv.events import Answer, Draft, decide_attend, draft_problem, parse_time
from listserv.requests import parse_commands

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("member", "open_", "current", "capacity", "attending", "answer"), [
    (True, True, None, None, 500, Answer.ATTENDING),
    (True, True, None, 2, 1, Answer.ATTENDING),
    (True, True, None, 2, 2, Answer.WAITING),
    (True, True, "attending", 2, 2, Answer.ALREADY_ATTENDING),
    (True, True, "waiting", 2, 2, Answer.ALREADY_WAITING),
    (False, True, None, None, 0, Answer.NOT_MEMBER),
    (True, False, None, None, 0, Answer.CLOSED),
])
def test_decide_attend(member: bool, open_: bool, current: str | None, capacity: int | None,
                       attending: int, answer: Answer) -> None:
    assert decide_attend(member=member, open_=open_, current=current, capacity=capacity,
                         attending=attending) is answer


def _draft(**kw: object) -> Draft:
    start = NOW + timedelta(days=2)
    base: dict[str, object] = {"title": "Breakfast meeting", "starts_at": start,
                               "ends_at": start + timedelta(hours=3), "timezone": "Europe/London"}
    return Draft(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "problem"), [
    ({}, None),
    ({"title": " "}, "title"),
    ({"timezone": "Mars/Olympus"}, "not a time zone"),
    ({"ends_at": NOW + timedelta(days=1)}, "end after it starts"),
    ({"starts_at": NOW - timedelta(hours=1)}, "in the future"),
    ({"capacity": 0}, "at least 1"),
    ({"booking_url": "javascript:alert(1)"}, "https://"),
])
def test_draft_problem(changes: dict[str, object], problem: str | None) -> None:
    found = draft_problem(_draft(**changes), NOW)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_parse_time_is_local_unless_an_offset_is_given() -> None:
    local = parse_time("2026-09-03T09:30", "Europe/London")
    assert local is not None and local.astimezone(UTC) == datetime(2026, 9, 3, 8, 30, tzinfo=UTC)
    given = parse_time("2026-09-03T09:30+00:00", "Europe/London")
    assert given is not None and given.astimezone(UTC).hour == 9
    assert parse_time("next tuesday", "Europe/London") is None


@pytest.mark.parametrize(("subject", "body", "wanted"), [
    ("attend 3", "", [("attend", ("3",))]),
    ("", "leave 3\n", [("event-leave", ("3",))]),
    ("", "cancel 12\n", [("event-leave", ("12",))]),
    ("leave", "", [("unsubscribe", ())]),  # without a number: the list, as before
    ("Re: attend 4", "> attend 5\n", [("attend", ("4",))]),
])
def test_event_commands_to_the_request_address(subject: str, body: str,
                                               wanted: list[tuple[str, tuple[str, ...]]]) -> None:
    assert [(c.name, c.args) for c in parse_commands(subject, body)] == wanted
