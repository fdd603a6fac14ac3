"""A member's bounce score on one list: pure decisions, data in, a ``Scored`` out.

Mailman's model, with its setting names (``MailingList.bounce_*``):
- a permanent failure (5.x.x) counts 1, a temporary one that finally gave up (4.x.x with
  ``Action: failed``) counts 0.5;
- 5.7.x (policy, spam, authentication) is the receiving side blocking the list, not a dead
  mailbox: never counted, but the owners are told (``Scored.tell_owners``);
- at most one count per UTC day, so one bad day of a big list's traffic is one bounce;
- a score older than ``bounce_info_stale_days`` without bounces starts again from zero;
- at ``bounce_score_threshold`` delivery is disabled (or, with ``bounce_probe``, a probe sent
  first; only a bounce of that probe disables).
Warnings after disabling are ``due_warning``: ``bounce_you_are_disabled_warnings`` of them,
``bounce_you_are_disabled_warnings_interval`` days apart, then the member is removed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Settings:
    threshold: int = 5
    stale_days: int = 7
    warnings: int = 3
    warnings_interval: int = 7
    probe: bool = False


@dataclass(frozen=True)
class Member:
    score: float = 0.0
    last_bounce_at: datetime | None = None
    disabled_at: datetime | None = None
    warnings_sent: int = 0
    last_warning_at: datetime | None = None


class Then(enum.Enum):
    NOTHING = "nothing"
    DISABLE = "disable"
    PROBE = "probe"


@dataclass(frozen=True)
class Scored:
    score: float  # the member's score after this bounce
    counted: float  # what this bounce added
    reason: str  # for the Bounce row and the log
    then: Then = Then.NOTHING
    tell_owners: bool = False


def weight(status: str) -> float:
    if status.startswith("5.7."):
        return 0.0
    if status.startswith("5"):
        return 1.0
    return 0.5 if status.startswith("4") else 0.0


def score(member: Member, status: str, now: datetime, settings: Settings, *,
          probe: bool = False) -> Scored:
    """What one failure with ``status`` does to ``member`` at ``now``. ``probe``: the bounce
    came back from a probe (its own VERP token), which disables at once."""
    if probe:
        return Scored(member.score, 0.0, "probe bounced", Then.DISABLE
                      if member.disabled_at is None else Then.NOTHING)
    if status.startswith("5.7."):
        return Scored(member.score, 0.0, f"{status}: refused by policy, not counted; owners told",
                      tell_owners=True)
    base = member.score
    last = member.last_bounce_at
    if last is not None and now - last > timedelta(days=settings.stale_days):
        base = 0.0
    elif last is not None and last.date() == now.date():
        return Scored(base, 0.0, f"{status}: already counted today")
    counted = weight(status)
    new = base + counted
    then = Then.NOTHING
    if member.disabled_at is None and new >= settings.threshold:
        then = Then.PROBE if settings.probe else Then.DISABLE
    return Scored(new, counted, f"{status}: counted {counted:g}, score {new:g}", then)


class Due(enum.Enum):
    NOTHING = "nothing"
    WARN = "warn"
    REMOVE = "remove"


def due_warning(member: Member, now: datetime, settings: Settings) -> Due:
    """For a disabled member: whether a reminder is due now, or removal (all reminders sent
    and the last interval over)."""
    if member.disabled_at is None:
        return Due.NOTHING
    last = member.last_warning_at or member.disabled_at
    if now - last < timedelta(days=settings.warnings_interval):
        return Due.NOTHING
    return Due.WARN if member.warnings_sent < settings.warnings else Due.REMOVE
