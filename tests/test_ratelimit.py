"""The in-memory sliding-window limiter (listserv/web/ratelimit.py), with a clock we move."""

from __future__ import annotations

from listserv.web.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_holds_within_the_window_and_frees_up_after_it() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 60.0, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # keys are apart
    clock.now += 30
    assert not limiter.allow("a")  # refused requests count too: hammering does not help
    clock.now += 31  # the first four are out of the window; the one at +30 is not
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]


def test_memory_is_bounded_by_forgetting_the_longest_unseen_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 60.0, max_keys=2, clock=clock)
    assert limiter.allow("a") and limiter.allow("b")
    assert not limiter.allow("a")  # a is now the most recently seen
    assert limiter.allow("c")  # b is forgotten
    assert limiter.allow("b")  # … so it starts again
    assert len(limiter._hits) == 2
