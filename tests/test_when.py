"""Times people type, read in the list's time zone (listserv.when), and recurrence rules
(listserv.recurrence), on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listserv import recurrence, when

# Wednesday 2 December 2026, 10:00 in London (GMT, so 10:00 UTC).
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text,expected", [
    ("2026-12-11T12:00", datetime(2026, 12, 11, 12, 0, tzinfo=UTC)),
    ("2026-07-11 12:00", datetime(2026, 7, 11, 11, 0, tzinfo=UTC)),  # BST
    ("2026-12-11T12:00+01:00", datetime(2026, 12, 11, 11, 0, tzinfo=UTC)),
    ("next Friday 12:00", datetime(2026, 12, 4, 12, 0, tzinfo=UTC)),
    ("Friday at 9:30", datetime(2026, 12, 4, 9, 30, tzinfo=UTC)),
    ("fri 5pm", datetime(2026, 12, 4, 17, 0, tzinfo=UTC)),
    ("Wednesday 11:00", datetime(2026, 12, 2, 11, 0, tzinfo=UTC)),  # today, still ahead
    ("Wednesday 09:00", datetime(2026, 12, 9, 9, 0, tzinfo=UTC)),  # today's has passed
    ("next Wednesday 11:00", datetime(2026, 12, 9, 11, 0, tzinfo=UTC)),
    ("tomorrow 07:00", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
    ("today 17:00", datetime(2026, 12, 2, 17, 0, tzinfo=UTC)),
    ("  NEXT   friday   12:00 ", datetime(2026, 12, 4, 12, 0, tzinfo=UTC)),
])
def test_times_are_read_in_the_lists_zone(text: str, expected: datetime) -> None:
    assert when.parse(text, "Europe/London", NOW) == expected


def test_next_friday_in_summer_is_british_summer_time() -> None:
    june = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)
    assert when.parse("next Friday 12:00", "Europe/London", june) == \
        datetime(2026, 6, 5, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize("text,message", [
    ("someday", "is not a time"),
    ("next Friday 25:00", "not a time of day"),
    ("Friday 13pm", "not a time"),
])
def test_bad_times_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(when.WhenProblem, match=message):
        when.parse(text, "Europe/London", NOW)


def test_unknown_zone_is_named() -> None:
    with pytest.raises(when.WhenProblem, match="unknown time zone 'Mars/Base'"):
        when.parse("today 17:00", "Mars/Base", NOW)


@pytest.mark.parametrize("text,normal", [
    ("every day at 07:00", "every day at 07:00"),
    ("every Monday at 08:30", "every Monday at 08:30"),
    ("Every second Wednesday at 9:00", "every second Wednesday at 09:00"),
    ("every other wednesday at 09:00", "every second Wednesday at 09:00"),
    ("every 2nd Wednesday at 9am", "every second Wednesday at 09:00"),
    ("every Mondays at 08:30", "every Monday at 08:30"),
])
def test_rules_are_read_and_written_back(text: str, normal: str) -> None:
    rule = recurrence.parse(text)
    assert rule.text == normal and recurrence.parse(rule.text) == rule


@pytest.mark.parametrize("text", ["every second day at 07:00", "weekly", "every Monday",
                                  "every Funday at 08:00", "every day at 24:00"])
def test_bad_rules_are_refused_with_examples(text: str) -> None:
    with pytest.raises(when.WhenProblem):
        recurrence.parse(text)


def test_first_occurrence_from_a_start() -> None:
    rule = recurrence.parse("every Monday at 08:30")
    assert rule.first(NOW, "Europe/London") == datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    daily = recurrence.parse("every day at 07:00")
    assert daily.first(NOW, "Europe/London") == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    assert daily.first(datetime(2026, 12, 2, 6, 0, tzinfo=UTC), "Europe/London") == \
        datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    wed = recurrence.parse("every second Wednesday at 09:00")
    assert wed.first(NOW, "Europe/London") == datetime(2026, 12, 9, 9, 0, tzinfo=UTC)


def test_occurrences_keep_local_time_across_both_changes() -> None:
    """Every Monday at 08:30 London: 07:30 UTC in summer, 08:30 UTC in winter."""
    rule = recurrence.parse("every Monday at 08:30")
    tz = "Europe/London"
    at = rule.first(datetime(2026, 10, 12, tzinfo=UTC), tz)
    seen = []
    for _ in range(4):
        seen.append(at)
        at = rule.after(at, at, tz)
    assert seen == [datetime(2026, 10, 12, 7, 30, tzinfo=UTC),
                    datetime(2026, 10, 19, 7, 30, tzinfo=UTC),
                    datetime(2026, 10, 26, 8, 30, tzinfo=UTC),  # clocks went back on the 25th
                    datetime(2026, 11, 2, 8, 30, tzinfo=UTC)]
    spring = rule.first(datetime(2027, 3, 22, tzinfo=UTC), tz)
    assert spring == datetime(2027, 3, 22, 8, 30, tzinfo=UTC)
    assert rule.after(spring, spring, tz) == datetime(2027, 3, 29, 7, 30, tzinfo=UTC)  # BST


def test_missed_occurrences_are_skipped_and_a_fortnight_keeps_its_phase() -> None:
    rule = recurrence.parse("every second Wednesday at 09:00")
    first = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    # Down from 9 December to 20 January: the next is the first of the same phase after now.
    now = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)
    assert rule.after(first, now, "Europe/London") == datetime(2027, 2, 3, 9, 0, tzinfo=UTC)
    assert rule.after(first, first, "Europe/London") == datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
