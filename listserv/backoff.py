"""Waits that double after each failure, up to a cap: the outbox's and the Discord relay's
retries, and starting a dead child process of ``serve`` again (``courier``, ``door``).

Pure functions; the callers keep the counts and do the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling from ``base``."""
    return float(min(cap, base * 2 ** min(max(attempts - 1, 0), 20)))


@dataclass(frozen=True)
class RestartPolicy:
    """When to start a dead child process again, as systemd's or supervisord's back-off: soon
    after a child that had been running a while, ever later (up to ``cap``) for one that dies
    as soon as it starts or cannot start, so a child broken on every start (its config, its
    store, a bug) does not fill the log and a core with a start a second."""

    base: float = 1.0  # seconds before the first attempt
    cap: float = 60.0  # the longest wait
    stable: float = 30.0  # a child that ran this long was well: its death starts the count again


RESTART = RestartPolicy()


def next_restart(policy: RestartPolicy, attempt: int, ran: float | None) -> tuple[int, float]:
    """The number of the next start attempt and the seconds to wait before it, after the child
    of attempt ``attempt`` (0: the first start) ran ``ran`` seconds and died, or could not
    start (``ran`` None). Attempts count from the child's last stable run."""
    attempt = 1 if ran is not None and ran >= policy.stable else attempt + 1
    return attempt, backoff(attempt, policy.base, policy.cap)
