"""Waits that double after each failure: the retries' (``backoff``) and the child processes'
restarts (``next_restart``)."""

from __future__ import annotations

import pytest

from listserv.backoff import RESTART, RestartPolicy, backoff, next_restart


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(n, 5, 600) for n in (0, 1, 2, 3, 4, 8, 50, 10**6)] == [
        5, 5, 10, 20, 40, 600, 600, 600]


@pytest.mark.parametrize(("attempt", "ran", "expected"), [
    (0, 0.4, (1, 1.0)),  # the first child died at once: the base wait
    (1, None, (2, 2.0)),  # its successor could not start: doubled
    (2, 0.4, (3, 4.0)),  # started, died at once: doubled again
    (3, 29.9, (4, 8.0)),  # short of the stable time: still counted
    (6, None, (7, 60.0)),  # 64 s: capped
    (500, 1.0, (501, 60.0)),  # still capped, however many
    (7, 30.0, (1, 1.0)),  # ran the stable time: well, the count starts again
    (0, 86400.0, (1, 1.0)),  # a day's run, then a crash: the base wait
])
def test_restart_waits_longer_for_each_quick_death_and_start_that_failed(
        attempt: int, ran: float | None, expected: tuple[int, float]) -> None:
    assert next_restart(RESTART, attempt, ran) == expected


def test_restart_policy_is_the_callers() -> None:
    quick = RestartPolicy(base=0.1, cap=0.3, stable=2.0)
    assert [next_restart(quick, n, 1.0)[1] for n in range(4)] == [0.1, 0.2, 0.3, 0.3]
    assert next_restart(quick, 3, 2.0) == (1, 0.1)
