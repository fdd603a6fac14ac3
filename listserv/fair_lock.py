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

import threading
from collections import deque


class FairLock:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        """True once this caller holds the lock; False if ``timeout`` seconds passed first."""
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

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # straight to the next in line, still held
            else:
                self._held = False
