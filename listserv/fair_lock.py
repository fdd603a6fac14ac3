"""A first-come-first-served lock for SQLite's writers in this process.

SQLite lets one writer at a time and makes the others wait in its busy handler, which is not a
queue: a waiter sleeps with growing back-off and a writer that comes later (the group committer
starting its next transaction, say) can take the lock again and again before it. With this lock
in front of ``BEGIN IMMEDIATE`` (``store``), the process's writers take turns in arrival order,
and SQLite's busy handler only settles the short overlap with a commit being finished.

Invariants:
- ``acquire`` hands the lock over in the order the callers asked for it.
- A caller that gives up (``timeout``) leaves the queue without blocking those behind it.
- The lock is not bound to a thread: a transaction may end on another thread than it began.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque


class FairLock:
    POLL = 0.0005  # seconds between tries of the file lock, doubling to MAX_POLL
    MAX_POLL = 0.002

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()
        self._fd: int | None = None
        self._waiting_fd: int | None = None

    def share_with_processes(self, path: str) -> None:
        """From now on the holder also takes an exclusive ``flock`` on ``path``, as do the other
        processes that share it (``commonroom serve`` and its SMTP process, ``listserv.door``):
        their writers then wait for each other's COMMIT, not in SQLite's busy handler, whose
        sleeps grow to 100 ms. One thread per process tries the file at a time (the turn in
        this process comes first).

        A process that waits for the file says so with a shared ``flock`` on ``path-waiting``;
        one that finds somebody waiting there waits its turn after them instead of taking the
        file the moment it is free, so a process writing back to back (the pipeline) cannot
        keep the other (the SMTP process) out."""
        if self._fd is None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self._waiting_fd = os.open(path + "-waiting", os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float) -> bool:
        """True once this caller holds the lock; False if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        if not self._acquire_turn(timeout):
            return False
        if self._fd is None or self._lock_file(deadline):
            return True
        self._pass_turn()
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._pass_turn()

    def _lock_file(self, deadline: float) -> bool:
        assert self._fd is not None and self._waiting_fd is not None
        pause = self.POLL
        # Others waiting: they go first. Our first try comes after their next poll.
        announced = self._others_waiting()
        if announced:
            fcntl.flock(self._waiting_fd, fcntl.LOCK_SH)
            time.sleep(self.MAX_POLL * 1.5)
        try:
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if not announced:
                        fcntl.flock(self._waiting_fd, fcntl.LOCK_SH)
                        announced = True
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(pause)  # a commit lasts milliseconds: poll, never block long
                    pause = min(pause * 2, self.MAX_POLL)
        finally:
            if announced:
                fcntl.flock(self._waiting_fd, fcntl.LOCK_UN)

    def _others_waiting(self) -> bool:
        assert self._waiting_fd is not None
        try:
            fcntl.flock(self._waiting_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._waiting_fd, fcntl.LOCK_UN)
        return False

    def _acquire_turn(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        if baton.acquire(timeout=timeout):
            return True  # handed over by release()
        with self._mutex:
            try:
                self._waiters.remove(baton)
            except ValueError:
                return True  # handed over just as the wait ended: it is ours
            return False

    def _pass_turn(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # straight to the next in line, still held
            else:
                self._held = False
