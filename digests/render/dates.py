"""Dates in a digest: days and times in the list's time zone, in English whatever the locale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from digests.model import Digest

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def local_time(dt: datetime, tz: str) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(ZoneInfo(tz))


def format_day(dt: datetime, tz: str) -> str:
    """ "Monday 23 November 2026", in time zone ``tz`` (English, whatever the locale)."""
    d = local_time(dt, tz)
    return f"{_DAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]} {d.year}"


def format_when(dt: datetime, tz: str) -> str:
    """The day, and the time of day unless it is midnight: "Thursday 3 September 2026, 09:30"."""
    d = local_time(dt, tz)
    day = format_day(d, tz)
    return day if (d.hour, d.minute) == (0, 0) else f"{day}, {d:%H:%M}"


def period_days(digest: Digest) -> tuple[str, str]:
    """First and last day of the period; ``period_end`` is exclusive."""
    end = local_time(digest.period_end, "UTC") - timedelta(microseconds=1)
    return format_day(digest.period_start, digest.tz), format_day(end, digest.tz)
