"""Recurrence rules for scheduled posts, in a list's time zone:

    every day at 07:00
    every Monday at 08:30
    every second Wednesday at 09:00     (also "every other", "every 2nd": fortnightly)

Invariants:
- Pure. Occurrences are wall-clock times: a date in the list's zone plus the rule's time, so
  "every Monday at 08:30" is 08:30 in London in winter (08:30 UTC) and in summer (07:30 UTC).
- A fortnightly rule keeps the phase of its first occurrence: later ones are 14 local days on.
- ``text`` is the rule written back in one normal form; ``parse(rule.text)`` gives it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from listserv.when import TIME_PATTERN, WEEKDAYS, WhenProblem, clock, local, zone

_ORDINAL = {"": 1, "second": 2, "other": 2, "2nd": 2, "2": 2}
_RULE = re.compile(rf"^every\s+(?:(?P<nth>second|other|2nd|2)\s+)?"
                   rf"(?P<day>day|{'|'.join(WEEKDAYS)})s?\s+at\s+{TIME_PATTERN}$")
EXAMPLES = "'every day at 07:00', 'every Monday at 08:30', 'every second Wednesday at 09:00'"


@dataclass(frozen=True)
class Rule:
    weekday: int | None  # 0 = Monday; None: every day
    every_days: int  # 1, 7 or 14
    at: time

    @property
    def text(self) -> str:
        when = f"{self.at:%H:%M}"
        if self.weekday is None:
            return f"every day at {when}"
        nth = "second " if self.every_days == 14 else ""
        return f"every {nth}{WEEKDAYS[self.weekday].capitalize()} at {when}"

    def first(self, start: datetime, tz_name: str) -> datetime:
        """The first occurrence at or after ``start`` (UTC)."""
        tz = zone(tz_name)
        day = start.astimezone(tz).date()
        if self.weekday is not None:
            day += timedelta(days=(self.weekday - day.weekday()) % 7)
        when = local(day, self.at, tz)
        if when < start:
            # the next matching day; a fortnightly rule's phase starts from there
            when = local(day + timedelta(days=1 if self.weekday is None else 7), self.at, tz)
        return when

    def after(self, occurrence: datetime, now: datetime, tz_name: str) -> datetime:
        """The first occurrence later than ``now``, counting on from ``occurrence`` (one of
        this rule's), so a fortnightly rule keeps its phase however long was missed."""
        tz = zone(tz_name)
        day = occurrence.astimezone(tz).date()
        step = timedelta(days=self.every_days)
        behind = max((now.astimezone(tz).date() - day).days // self.every_days - 1, 0)
        day += step * behind  # skip whole missed periods at once
        when = local(day, self.at, tz)
        while when <= now or when <= occurrence:
            day += step
            when = local(day, self.at, tz)
        return when


def parse(text: str) -> Rule:
    words = " ".join(text.strip().lower().split())
    m = _RULE.match(words)
    if m is None or (m["day"] == "day" and m["nth"]):
        raise WhenProblem(f"'{text}' is not a recurrence I understand: try {EXAMPLES}")
    at = clock(m["hour"], m["minute"], m["ampm"])
    if m["day"] == "day":
        return Rule(None, 1, at)
    return Rule(WEEKDAYS.index(m["day"]), 7 * _ORDINAL[m["nth"] or ""], at)
