"""Waits that double after each failure (``backoff``)."""

from __future__ import annotations

from listserv.backoff import backoff


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(n, 5, 600) for n in (0, 1, 2, 3, 4, 8, 50, 10**6)] == [
        5, 5, 10, 20, 40, 600, 600, 600]

