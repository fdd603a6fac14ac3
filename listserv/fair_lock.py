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
        # (lock file, waiting file), set once and in one assignment: a writer on another thread
        # may be acquiring while ``share_with_processes`` runs.
        self._files: tuple[int, int] | None = None
        self._file_held = False  # whether the holder took the file lock (set by the holder only)

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
        with self._mutex:
            if self._files is None:
                self._files = (os.open(path, os.O_RDWR | os.O_CREAT, 0o600),
                               os.open(path + "-waiting", os.O_RDWR | os.O_CREAT, 0o600))

    def acquire(self, timeout: float) -> bool:
        """True once this caller holds the lock; False if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        if not self._acquire_turn(timeout):
            return False
        files = self._files
        if files is None:
            return True
        try:
            self._file_held = self._lock_file(files, deadline)
        except BaseException:
            self._pass_turn()  # never keep the turn on an error: the others would wait for good
            raise
        if not self._file_held:
            self._pass_turn()
        return self._file_held

    def release(self) -> None:
        if self._file_held:
            self._file_held = False
            assert self._files is not None
            fcntl.flock(self._files[0], fcntl.LOCK_UN)
        self._pass_turn()

    @staticmethod
    def _lock_file(files: tuple[int, int], deadline: float) -> bool:
        fd, waiting_fd = files
        pause = FairLock.POLL
        # Others waiting: they go first. Our first try comes after their next poll.
        announced = FairLock._others_waiting(waiting_fd)
        if announced:
            fcntl.flock(waiting_fd, fcntl.LOCK_SH)
            time.sleep(FairLock.MAX_POLL * 1.5)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if not announced:
                        fcntl.flock(waiting_fd, fcntl.LOCK_SH)
                        announced = True
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(pause)  # a commit lasts milliseconds: poll, never block long
                    pause = min(pause * 2, FairLock.MAX_POLL)
        finally:
            if announced:
                fcntl.flock(waiting_fd, fcntl.LOCK_UN)

    @staticmethod
    def _others_waiting(waiting_fd: int) -> bool:
        try:
            fcntl.flock(waiting_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(waiting_fd, fcntl.LOCK_UN)
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
