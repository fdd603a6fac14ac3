"""Waits that double after each failure, up to a cap: the outbox's and the Discord relay's
retries.

Pure functions; the callers keep the counts and do the waiting.
"""

from __future__ import annotations


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling from ``base``."""
    return float(min(cap, base * 2 ** min(max(attempts - 1, 0), 20)))

