"""bounce_score: the table of what one bounce does to a member's score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listserv.bounce_score import Due, Member, Scored, Settings, Then, due_warning, score

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)

# member before, status, settings → (score, counted, then, tell_owners)
CASES: list[tuple[Member, str, Settings, tuple[float, float, Then, bool]]] = [
    (Member(), "5.1.1", Settings(), (1.0, 1.0, Then.NOTHING, False)),
    (Member(), "4.4.1", Settings(), (0.5, 0.5, Then.NOTHING, False)),
    (Member(), "5.7.1", Settings(), (0.0, 0.0, Then.NOTHING, True)),
    (Member(2.0, NOW - DAY), "5.7.26", Settings(), (2.0, 0.0, Then.NOTHING, True)),
    (Member(2.0, NOW - timedelta(hours=1)), "5.1.1", Settings(), (2.0, 0.0, Then.NOTHING, False)),
    (Member(4.0, NOW - DAY), "5.1.1", Settings(), (5.0, 1.0, Then.DISABLE, False)),
    (Member(4.5, NOW - DAY), "4.0.0", Settings(), (5.0, 0.5, Then.DISABLE, False)),
    (Member(4.0, NOW - DAY), "5.1.1", Settings(probe=True), (5.0, 1.0, Then.PROBE, False)),
    (Member(4.0, NOW - 8 * DAY), "5.1.1", Settings(), (1.0, 1.0, Then.NOTHING, False)),
    (Member(), "5.1.1", Settings(threshold=1), (1.0, 1.0, Then.DISABLE, False)),
    (Member(9.0, NOW - DAY, disabled_at=NOW - DAY), "5.1.1", Settings(),
     (10.0, 1.0, Then.NOTHING, False)),
]


@pytest.mark.parametrize(("member", "status", "settings", "want"), CASES)
def test_score(member: Member, status: str, settings: Settings,
               want: tuple[float, float, Then, bool]) -> None:
    got: Scored = score(member, status, NOW, settings)
    assert (got.score, got.counted, got.then, got.tell_owners) == want
    assert got.reason.startswith(status)


def test_probe_bounce_disables() -> None:
    assert score(Member(5.0, NOW - DAY), "5.0.0", NOW, Settings(probe=True),
                 probe=True).then is Then.DISABLE


@pytest.mark.parametrize(("member", "now", "want"), [
    (Member(), NOW, Due.NOTHING),
    (Member(disabled_at=NOW), NOW + 6 * DAY, Due.NOTHING),
    (Member(disabled_at=NOW), NOW + 7 * DAY, Due.WARN),
    (Member(disabled_at=NOW, warnings_sent=2, last_warning_at=NOW + 14 * DAY), NOW + 21 * DAY,
     Due.WARN),
    (Member(disabled_at=NOW, warnings_sent=3, last_warning_at=NOW + 21 * DAY), NOW + 27 * DAY,
     Due.NOTHING),
    (Member(disabled_at=NOW, warnings_sent=3, last_warning_at=NOW + 21 * DAY), NOW + 28 * DAY,
     Due.REMOVE),
])
def test_due_warning(member: Member, now: datetime, want: Due) -> None:
    assert due_warning(member, now, Settings()) is want
