"""When digests fall due: pure functions over a list's cron schedule and time zone.

A digest covers [previous period end, this period end). The period end of a scheduled digest is
the schedule's latest fire time at or before now, never "now" itself: a job that fires twice, or
late after a restart, computes the same period end, and the store's unique (list, period end)
key turns the second attempt into "already sent".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

FIRST_PERIOD = timedelta(days=7)  # what a list's first digest covers
LOOKBACK = (timedelta(days=1), timedelta(days=8), timedelta(days=63))


class ScheduleProblem(ValueError):
    pass


def trigger(schedule: str, tz: str) -> CronTrigger:
    """The cron trigger for a list; a clear error for a bad expression or time zone.

    Day-of-week names (mon, tue, ...) are the safe spelling: APScheduler 3 numbers the days
    from Monday = 0, unlike cron.
    """
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleProblem(f"unknown time zone '{tz}' (use a name like Europe/London)") from None
    try:
        return CronTrigger.from_crontab(schedule, timezone=zone)
    except ValueError as e:
        raise ScheduleProblem(f"'{schedule}' is not a cron expression "
                              f"(minute hour day month weekday, e.g. '0 8 * * mon'): {e}") from None


def latest_fire(schedule: str, tz: str, now: datetime) -> datetime | None:
    """The latest scheduled time at or before ``now`` (looking back up to about two months)."""
    cron = trigger(schedule, tz)
    for back in LOOKBACK:
        found: datetime | None = None
        t = cron.get_next_fire_time(None, now - back)
        while t is not None and t <= now:
            found = t
            t = cron.get_next_fire_time(t, t + timedelta(seconds=1))
        if found is not None:
            return found
    return None


def next_fire(schedule: str, tz: str, now: datetime) -> datetime | None:
    nxt: datetime | None = trigger(schedule, tz).get_next_fire_time(None, now)
    return nxt


def period_start(previous_end: datetime | None, end: datetime) -> datetime:
    """Where a digest's period starts: the previous digest's end, else a week back (posts
    imported from an old archive are older than that and stay out of the first digest)."""
    return previous_end if previous_end is not None else end - FIRST_PERIOD


def volume_and_number(previous: tuple[int, int, datetime] | None,
                      end: datetime) -> tuple[int, int]:
    """RFC 1153 numbering: a volume per calendar year of the list's life, issues counted
    within it. ``previous`` is the last digest's (volume, number, period end)."""
    if previous is None:
        return 1, 1
    volume, number, previous_end = previous
    if end.year != previous_end.year:
        return volume + end.year - previous_end.year, 1
    return volume, number + 1
