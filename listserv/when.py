"""Times people type, read in a list's time zone: ISO 8601 ("2026-12-11T12:00", with or
without an offset) or a short phrase ("next Friday 12:00", "Friday at 9:30", "tomorrow 17:00",
"today 17:00").

Invariants:
- Pure: the caller passes ``now``; nothing reads the clock.
- Results are timezone-aware UTC. A time without an offset is wall-clock time in the list's
  zone (``zoneinfo``), so 09:00 is 09:00 there in summer and in winter. A wall time skipped by
  a daylight-saving change (01:30 on the last Sunday of March in London) is read with the
  offset before the change, i.e. it lands an hour later on the clock (02:30 BST).
- "Friday": the next Friday at that time, today if today is Friday and the time is still
  ahead. "next Friday": the first Friday after today (a week on, if today is Friday).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TIME_PATTERN = r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm)?"
_PHRASE = re.compile(rf"^(?:(?P<next>next)\s+)?(?P<day>today|tomorrow|{'|'.join(WEEKDAYS)}|"
                     rf"{'|'.join(d[:3] for d in WEEKDAYS)})\s+(?:at\s+)?{TIME_PATTERN}$")


class WhenProblem(ValueError):
    """A time that cannot be read; the message says what is accepted."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WhenProblem(f"unknown time zone '{name}'") from None


def clock(hour: str, minute: str | None, ampm: str | None) -> time:
    h, m = int(hour), int(minute or 0)
    if ampm:
        if not 1 <= h <= 12:
            raise WhenProblem(f"{hour}{ampm} is not a time")
        h = h % 12 + (12 if ampm == "pm" else 0)
    if h > 23 or m > 59:
        raise WhenProblem(f"{hour}:{minute or '00'} is not a time of day")
    return time(h, m)


def local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Wall-clock ``at`` on ``day`` in ``tz``, as UTC."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def parse(text: str, tz_name: str, now: datetime) -> datetime:
    tz = zone(tz_name)
    words = " ".join(text.strip().lower().split())
    m = _PHRASE.match(words)
    if m is None:
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise WhenProblem(f"'{text}' is not a time: give an ISO time such as "
                              "2026-12-11T12:00, or a phrase such as 'next Friday 12:00', "
                              "'Friday 9:30', 'tomorrow 17:00'") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed.astimezone(UTC)
    at = clock(m["hour"], m["minute"], m["ampm"])
    today = now.astimezone(tz).date()
    word = m["day"]
    if word in ("today", "tomorrow"):
        return local(today + timedelta(days=1 if word == "tomorrow" else 0), at, tz)
    weekday = next(i for i, d in enumerate(WEEKDAYS) if d.startswith(word))
    ahead = (weekday - today.weekday()) % 7
    if m["next"]:
        ahead = ahead or 7
    elif ahead == 0 and local(today, at, tz) <= now:
        ahead = 7
    return local(today + timedelta(days=ahead), at, tz)
