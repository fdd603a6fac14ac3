"""Leases (``listserv.leases``) and the loop that holds one (``listserv.leadership``): one
holder at a time, a renewal keeps it, an expired or released lease can be taken, and a waiting
process takes over when the holder stops or dies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from listserv import leadership, leases
from listserv.leadership import Leadership, LeaseTiming
from listserv.models import utcnow
from listserv.store import Store

TTL = timedelta(seconds=30)
FAST = LeaseTiming(ttl=1.5, renew_every=0.2, retry_every=0.2)


def _take(store: Store, holder: str, at: float = 0.0) -> bool:
    with store.session() as s:
        return leases.take(s, "job", holder, TTL, utcnow() + timedelta(seconds=at))


@pytest.mark.parametrize(("steps", "expected"), [
    # (holder, seconds from now) in order -> what each take returned
    ((("a", 0), ("b", 0)), (True, False)),  # held: the second is refused
    ((("a", 0), ("a", 10), ("b", 20)), (True, True, False)),  # a renewal keeps it
    ((("a", 0), ("b", 31)), (True, True)),  # expired: taken
    ((("a", 0), ("b", 31), ("a", 32)), (True, True, False)),  # and the old holder is out
])
def test_take(store: Store, steps: tuple[tuple[str, int], ...],
              expected: tuple[bool, ...]) -> None:
    assert tuple(_take(store, who, at) for who, at in steps) == expected


def test_release_frees_it_at_once_and_holder_says_who(store: Store) -> None:
    assert _take(store, "a")
    with store.read_session() as s:
        held = leases.holder(s, "job")
    assert held is not None and held.holder == "a"
    with store.session() as s:
        leases.release(s, "job", "b")  # not b's to give
    assert not _take(store, "b")
    with store.session() as s:
        leases.release(s, "job", "a")
    with store.read_session() as s:
        assert leases.holder(s, "job") is None
    assert _take(store, "b")


class Job:
    """What a Leadership runs: records when it begins and ends."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def begin(self) -> None:
        self.log.append(f"{self.name} begins")

    async def end(self) -> None:
        self.log.append(f"{self.name} ends")


def _leader(db_url: str, name: str, log: list[str]) -> Leadership:
    job = Job(name, log)
    return Leadership(Store(db_url), "job", name, begin=job.begin, end=job.end, timing=FAST)


async def _until(check: object, timeout: float) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_one_runs_and_the_other_takes_over_on_a_stop(store: Store, db_url: str) -> None:
    log: list[str] = []

    async def scenario() -> None:
        a, b = _leader(db_url, "a", log), _leader(db_url, "b", log)
        await a.start()
        await b.start()
        await asyncio.sleep(FAST.ttl * 2)  # many renewals: b never gets it
        assert (a.holding, b.holding, log) == (True, False, ["a begins"])
        await a.stop()
        await _until(lambda: "b begins" in log, FAST.retry_every * 3)
        await b.stop()
        a.store.dispose()
        b.store.dispose()

    asyncio.run(scenario())
    assert log == ["a begins", "a ends", "b begins", "b ends"]


def test_the_other_takes_over_when_the_holder_dies(store: Store, db_url: str) -> None:
    log: list[str] = []

    async def scenario() -> None:
        a, b = _leader(db_url, "a", log), _leader(db_url, "b", log)
        await a.start()
        await b.start()
        assert a._task is not None
        a._task.cancel()  # a's process is gone: no renewal, no release
        started = asyncio.get_running_loop().time()
        await _until(lambda: "b begins" in log, FAST.ttl + FAST.retry_every * 3)
        waited = asyncio.get_running_loop().time() - started
        assert waited >= FAST.ttl - FAST.renew_every  # not before a's lease ran out
        await b.stop()
        a.store.dispose()
        b.store.dispose()

    asyncio.run(scenario())
    assert log == ["a begins", "b begins", "b ends"]


def test_a_holder_that_cannot_renew_stops_the_job(store: Store, db_url: str) -> None:
    log: list[str] = []

    async def scenario() -> None:
        a = _leader(db_url, "a", log)
        await a.start()
        with store.session() as s:  # someone else has it now (a's clock was wrong, say)
            leases.release(s, "job", a.holder)
            leases.take(s, "job", "intruder", TTL)
        await _until(lambda: "a ends" in log, FAST.renew_every * 5)
        assert not a.holding
        await a.stop()
        a.store.dispose()

    asyncio.run(scenario())
    assert log == ["a begins", "a ends"]


def test_a_failed_begin_at_start_reaches_the_caller_and_frees_the_lease(
        store: Store, db_url: str) -> None:
    async def fail() -> None:
        raise RuntimeError("no token")

    async def nothing() -> None:
        pass

    async def scenario() -> None:
        a = Leadership(Store(db_url), "job", "a", begin=fail, end=nothing, timing=FAST)
        with pytest.raises(RuntimeError, match="no token"):
            await a.start()
        a.store.dispose()

    asyncio.run(scenario())
    with store.read_session() as s:
        assert leases.holder(s, "job") is None


def test_processes_run_with_a_takeover_within_a_minute() -> None:
    t = leadership.TIMING
    assert t.ttl + t.retry_every <= 60  # the holder's death
    assert t.ttl - 2 * t.renew_every > 0  # time for the holder to stop before anyone begins


def test_a_job_that_stops_by_itself_frees_the_lease_for_another(
        store: Store, db_url: str) -> None:
    log: list[str] = []
    gone = {"a": False}

    async def scenario() -> None:
        job = Job("a", log)
        a = Leadership(Store(db_url), "job", "a", begin=job.begin, end=job.end,
                       alive=lambda: not gone["a"], timing=FAST)
        b = _leader(db_url, "b", log)
        await a.start()
        await b.start()
        await asyncio.sleep(FAST.renew_every * 3)
        assert log == ["a begins"]
        gone["a"] = True  # a's gateway connection gave up
        await _until(lambda: "b begins" in log, FAST.retry_every * 6)
        await b.stop()
        await a.stop()
        a.store.dispose()
        b.store.dispose()

    asyncio.run(scenario())
    assert log[:3] == ["a begins", "a ends", "b begins"]


def test_the_log_says_which_process_runs_it(store: Store, db_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[str, str]:
        a, b = _leader(db_url, "job a", []), _leader(db_url, "job b", [])
        await a.start()
        await b.start()
        holders = a.holder, b.holder
        await b.stop()
        await a.stop()
        a.store.dispose()
        b.store.dispose()
        return holders

    with caplog.at_level("INFO", logger="commonroom.lease"):
        first, second = asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records]
    assert f"job a runs in this process ({first}): it holds the lease 'job'" in said
    assert any(m.startswith(f"job b runs in another process ({first}, since ")
               and m.endswith(f"this one ({second}) takes over if it stops") for m in said)
