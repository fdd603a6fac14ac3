"""SQLite writers take turns in arrival order (issue 12: the flood's member p99 came from
SQLite's busy handler letting later writers win)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from listserv import audit, fair_lock
from listserv.fair_lock import FairLock
from listserv.store import Store


def start_waiters(lock: FairLock, n: int, order: list[int],
                  timeout: float = 10) -> list[threading.Thread]:
    threads = []
    for i in range(n):
        def wait(i: int = i) -> None:
            if lock.acquire(timeout):
                order.append(i)
                lock.release()
        t = threading.Thread(target=wait)
        t.start()
        threads.append(t)
        time.sleep(0.02)  # so that arrival order is known
    return threads


def test_the_lock_goes_to_waiters_in_arrival_order() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    order: list[int] = []
    threads = start_waiters(lock, 6, order)
    lock.release()
    for t in threads:
        t.join(10)
    assert order == list(range(6))


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    assert not lock.acquire(0.05)
    order: list[int] = []
    threads = start_waiters(lock, 2, order)
    lock.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1]
    assert lock.acquire(0.1), "free again once everyone is done"


def test_sqlite_writers_of_a_store_commit_in_arrival_order(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fair.db'}")
    store.upgrade()
    order: list[int] = []
    first_in = threading.Event()
    go = threading.Event()

    def first() -> None:
        with store.session() as s:
            audit.record(s, list_id=None, actor="test", action="first")
            s.flush()  # holds SQLite's write lock from here
            first_in.set()
            go.wait(10)

    def writer(i: int) -> None:
        with store.session() as s:
            audit.record(s, list_id=None, actor="test", action=f"w{i}")
            s.flush()
            order.append(i)

    holder = threading.Thread(target=first)
    holder.start()
    assert first_in.wait(10)
    threads = []
    for i in range(5):
        t = threading.Thread(target=writer, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.15)  # SQLite's busy handler would by now sleep longest for the first
    go.set()
    for t in [holder, *threads]:
        t.join(30)
    store.dispose()
    assert order == list(range(5))


def test_locks_sharing_a_file_exclude_each_other_as_processes_would(tmp_path: Path) -> None:
    """Two locks on one file (as ``serve`` and its SMTP process hold them): flock is per open
    file, so two opens in one process stand in for two processes."""
    one, two = FairLock(), FairLock()
    for lock in (one, two):
        lock.share_with_processes(str(tmp_path / "db-writelock"))
    assert one.acquire(timeout=1)
    started = time.monotonic()
    assert not two.acquire(timeout=0.2), "the other holds the file"
    assert time.monotonic() - started >= 0.2
    released: list[float] = []
    threading.Timer(0.1, lambda: (released.append(time.monotonic()), one.release())).start()
    assert two.acquire(timeout=5)
    assert released and time.monotonic() - released[0] < 0.05, "taken as soon as it is free"
    two.release()
    assert one.acquire(timeout=1)
    one.release()


def test_a_process_waiting_for_the_file_goes_before_one_that_just_let_it_go(
        tmp_path: Path) -> None:
    """The pipeline commits back to back; the SMTP process waiting for the file must get it
    next, not lose it to the pipeline's next transaction."""
    path = str(tmp_path / "db-writelock")
    wins = 0
    for _ in range(10):
        busy, door = FairLock(), FairLock()
        busy.share_with_processes(path)
        door.share_with_processes(path)
        assert busy.acquire(timeout=1)
        order: list[str] = []

        def wait_for_it(door: FairLock = door, order: list[str] = order) -> None:
            assert door.acquire(timeout=5)
            order.append("door")
            door.release()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.02)  # the door is waiting on the file
        busy.release()
        assert busy.acquire(timeout=5)  # at once again, as a pipeline would
        order.append("busy")
        busy.release()
        waiter.join(5)
        wins += order[0] == "door"
    assert wins >= 8, f"the waiting process went first {wins} times of 10"


def test_sharing_while_writers_take_turns_loses_no_turn(tmp_path: Path) -> None:
    """CI once saw ``share_with_processes`` half done (the lock file open, the waiting file
    not yet) by a writer on another thread: that writer failed while holding the turn, and
    every later writer of the process waited for good. Sharing is now one assignment, and a
    writer that fails after taking the turn passes it on."""
    for round_ in range(20):
        lock = FairLock()
        errors: list[BaseException] = []
        stop = threading.Event()

        def write(lock: FairLock = lock, errors: list[BaseException] = errors,
                  stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    assert lock.acquire(timeout=2), "a turn was lost"
                    lock.release()
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    return

        writers = [threading.Thread(target=write) for _ in range(3)]
        for t in writers:
            t.start()
        time.sleep(0.005)
        lock.share_with_processes(str(tmp_path / f"db-writelock-{round_}"))
        time.sleep(0.01)
        stop.set()
        for t in writers:
            t.join(10)
        assert not errors, errors
        assert lock.acquire(timeout=1)
        lock.release()


def test_a_writer_that_fails_on_the_file_passes_its_turn_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = FairLock()
    lock.share_with_processes(str(tmp_path / "db-writelock"))

    def broken(*_args: object) -> bool:
        raise OSError("flock failed")

    monkeypatch.setattr(FairLock, "_lock_file", staticmethod(broken))
    try:
        lock.acquire(timeout=1)
    except OSError:
        pass
    else:
        raise AssertionError("the error should reach the writer")
    monkeypatch.undo()
    assert lock.acquire(timeout=1), "the failed writer kept the turn"
    lock.release()


def test_a_process_waiting_for_the_file_sleeps_until_it_is_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No polling (issue 12: the tries and sleeps of every waiting writer were ~20 % of the
    handling writer's time): a wait of 0.3 s is a few ``flock`` calls, not one per
    millisecond, and ends as soon as the holder lets go."""
    holder, waiter = FairLock(), FairLock()
    for lock in (holder, waiter):
        lock.share_with_processes(str(tmp_path / "db-writelock"))
    calls: list[int] = []
    real = fair_lock.fcntl.flock

    def counted(fd: int, op: int) -> None:
        calls.append(op)
        real(fd, op)

    assert holder.acquire(timeout=1)
    monkeypatch.setattr(fair_lock.fcntl, "flock", counted)
    released: list[float] = []
    threading.Timer(0.3, lambda: (released.append(time.monotonic()), holder.release())).start()
    assert waiter.acquire(timeout=5)
    assert released and time.monotonic() - released[0] < 0.05
    waiter.release()
    assert len(calls) <= 8, f"{len(calls)} flock calls for one wait"


def test_a_wait_given_up_lets_the_file_go_once_it_comes(tmp_path: Path) -> None:
    """The waiter thread still gets the file for a wait its asker gave up on; with nobody
    else of the process asking by then, it lets it go at once for the other processes."""
    path = str(tmp_path / "db-writelock")
    one, two, three = FairLock(), FairLock(), FairLock()
    for lock in (one, two, three):
        lock.share_with_processes(path)
    assert one.acquire(timeout=1)
    assert not two.acquire(timeout=0.1)
    one.release()
    assert three.acquire(timeout=2), "two's waiter thread kept the file"
    three.release()
    assert two.acquire(timeout=2)
    two.release()
