"""Leases (``listserv.leases``) and the loop that holds one (``listserv.leadership``): one
holder at a time, a renewal keeps it, an expired or released lease can be taken, and a waiting
process takes over when the holder stops or dies."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta

import pytest

from listserv import leadership, leases
from listserv.leadership import Leadership, LeaseTiming, wait_limit
from listserv.models import Lease, utcnow
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
        self.began_at: datetime | None = None

    async def begin(self) -> None:
        self.log.append(f"{self.name} begins")
        self.began_at = utcnow()

    async def end(self) -> None:
        self.log.append(f"{self.name} ends")


def _leader(db_url: str, name: str, log: list[str], job: Job | None = None) -> Leadership:
    job = job or Job(name, log)
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

    def row() -> tuple[str, datetime] | None:
        with store.read_session() as s:
            lease = s.get(Lease, "job")
            return (lease.holder, lease.expires_at) if lease is not None else None

    async def scenario() -> None:
        b_job = Job("b", log)
        a, b = _leader(db_url, "a", log), _leader(db_url, "b", log, b_job)
        await a.start()
        await b.start()
        assert a._task is not None
        a._task.cancel()  # a's process is gone: no renewal, no release
        # Until b takes it, a's row says until when a's lease ran (a renewal in flight at the
        # cancel still lands); b must begin after that, however loaded the machine is.
        deadline = asyncio.get_running_loop().time() + FAST.ttl * 10
        a_until = None
        while "b begins" not in log:
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            lease = await asyncio.to_thread(row)
            if lease is not None and lease[0] == a.holder:
                a_until = lease[1]
            await asyncio.sleep(0.05)
        assert a_until is not None and b_job.began_at is not None
        assert b_job.began_at >= a_until  # not before a's lease ran out
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
        # The renewal that finds the intruder returns False (a slow one at the latest when
        # renew_every is left of a's own lease: wait_limit).
        await _until(lambda: "a ends" in log, FAST.ttl * 2)
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
        await _until(lambda: "b begins" in log, FAST.ttl * 2)  # a waits ttl: b first
        await b.stop()
        await a.stop()
        a.store.dispose()
        b.store.dispose()

    asyncio.run(scenario())
    assert log[:3] == ["a begins", "a ends", "b begins"]


@pytest.mark.parametrize(("good_until", "now", "limit"), [
    (None, 5.0, 1.1),  # holding nothing: while the lease it gives would have 2 renewals left
    (11.5, 10.2, 1.1),  # renewing: until renew_every is left of the lease
    (11.5, 11.4, 0.0),  # too late to wait at all: lost
])
def test_wait_limit(good_until: float | None, now: float, limit: float) -> None:
    assert wait_limit(FAST, good_until, now) == pytest.approx(limit)


def _slow_take(leader: Leadership, monkeypatch: pytest.MonkeyPatch, call: int,
               seconds: float) -> None:
    """The ``call``-th take or renewal of ``leader`` takes ``seconds`` longer (a busy store)."""
    take, calls = leader._take, [0]

    def slow() -> bool:
        calls[0] += 1
        if calls[0] == call:
            time.sleep(seconds)
        return take()

    monkeypatch.setattr(leader, "_take", slow)


def test_a_renewal_slower_than_renew_every_but_within_the_lease_keeps_the_job(
        store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load a renewal may take longer than renew_every; abandoning it ended the job
    while its thread renewed the lease anyway, and the next try began the job again."""
    log: list[str] = []

    async def scenario() -> None:
        a = _leader(db_url, "a", log)
        await a.start()
        _slow_take(a, monkeypatch, call=2, seconds=FAST.renew_every * 2)
        await asyncio.sleep(FAST.ttl * 2)
        assert a.holding
        await a.stop()
        a.store.dispose()

    asyncio.run(scenario())
    assert log == ["a begins", "a ends"]


def test_a_slow_first_take_still_begins_the_job_at_start(
        store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []

    async def scenario() -> None:
        a = _leader(db_url, "a", log)
        _slow_take(a, monkeypatch, call=1, seconds=FAST.renew_every * 2)
        await a.start()
        assert a.holding and log == ["a begins"]
        await a.stop()
        a.store.dispose()

    asyncio.run(scenario())
    assert log == ["a begins", "a ends"]


def test_a_renewal_that_does_not_come_back_ends_the_job_before_it_does(
        store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    hang = FAST.ttl * 3

    a = _leader(db_url, "a", log)

    async def scenario() -> None:
        await a.start()
        _slow_take(a, monkeypatch, call=2, seconds=hang)
        await _until(lambda: "a ends" in log, hang - FAST.ttl)
        await a.stop()

    asyncio.run(scenario())  # which waits for the hung renewal's thread
    a.store.dispose()
    assert log[:2] == ["a begins", "a ends"]


def test_a_job_that_stops_by_itself_waits_for_a_slow_waiting_process(
        store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The waiting process tries every retry_every plus its own store time; the one whose job
    stopped by itself does not take the lease back before it had its turn."""
    log: list[str] = []
    gone = {"a": False}
    slow_once, entered = threading.Event(), threading.Event()

    async def scenario() -> None:
        job = Job("a", log)
        a = Leadership(Store(db_url), "job", "a", begin=job.begin, end=job.end,
                       alive=lambda: not gone["a"], timing=FAST)
        b = _leader(db_url, "b", log)
        holder = b._holder

        def slow_holder() -> leases.Holding | None:  # b's loop is slow once (a loaded machine)
            if slow_once.is_set():
                slow_once.clear()
                entered.set()
                time.sleep(FAST.retry_every * 4)
            return holder()

        monkeypatch.setattr(b, "_holder", slow_holder)
        await a.start()
        await b.start()
        slow_once.set()
        assert await asyncio.to_thread(entered.wait, 10)
        gone["a"] = True  # a's gateway connection gave up while b's loop is busy
        await _until(lambda: "b begins" in log, FAST.ttl * 2)
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
