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
- Shared with other processes (``share_with_processes``), no wait polls: a process waiting
  for the file sleeps in the kernel until it is free, and none waits past its ``timeout``.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

WAITING, GRANTED, ABANDONED = "waiting", "granted", "abandoned"


@dataclass(eq=False)
class _Request:
    """A wait for the file, made by the thread whose turn it is and served by the waiter
    thread (``FairLock._wait_for_files``)."""

    has_gate: bool  # the asker already holds the gate (it found the file taken)
    baton: threading.Lock = field(default_factory=threading.Lock)
    state: str = WAITING
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.baton.acquire()  # released when the request is granted or fails


class FairLock:
    WAITER_IDLE = 10.0  # seconds the waiter thread outlives its last request

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()
        # (lock file, gate file), set once and in one assignment: a writer on another thread
        # may be acquiring while ``share_with_processes`` runs.
        self._files: tuple[int, int] | None = None
        self._file_held = False  # whether the holder took the file lock (set by the holder only)
        # Waits for the files, oldest first, served by one waiter thread; while there are any,
        # only that thread touches the files: flock locks belong to the open file, which all
        # threads of the process share, so another thread's try would "take" a lock the
        # waiter thread holds.
        self._file_mutex = threading.Lock()
        self._requests: deque[_Request] = deque()
        self._requests_ready = threading.Condition(self._file_mutex)
        self._waiter: tuple[int, threading.Thread] | None = None  # (pid, thread)

    def share_with_processes(self, path: str) -> None:
        """From now on the holder also takes an exclusive ``flock`` on ``path``, as do the other
        processes that share it (``commonroom serve`` and its SMTP process, ``listserv.door``):
        their writers then wait for each other's COMMIT, not in SQLite's busy handler, whose
        sleeps grow to 100 ms. One thread per process tries the file at a time (the turn in
        this process comes first).

        The processes pass through a turnstile, ``path-gate``: a process takes the gate, then
        the lock file, then lets go of the gate. One that has to wait for the lock file keeps
        the gate meanwhile, so a process that has just let the lock go (the pipeline, writing
        back to back) finds the gate taken and queues behind it: it cannot take the lock file
        again before the process that waited (the SMTP process). Both waits are blocking
        ``flock`` calls, woken by the kernel the moment the other process lets go; they run in
        a waiter thread, so the asking thread can stop waiting at its ``timeout``."""
        with self._mutex:
            if self._files is None:
                self._files = (os.open(path, os.O_RDWR | os.O_CREAT, 0o600),
                               os.open(path + "-gate", os.O_RDWR | os.O_CREAT, 0o600))

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

    def _lock_file(self, files: tuple[int, int], deadline: float) -> bool:
        """Take the lock file through the gate (called by the holder of this process's turn).
        At once if nobody is at the gate and the file is free; else the waiter thread waits
        for them, and this thread for it, until ``deadline``."""
        fd, gate = files
        with self._file_mutex:
            waiter_busy = bool(self._requests)  # still serving a wait given up on: queue after
        has_gate = not waiter_busy and _try_flock(gate)
        if has_gate:
            try:
                took = _try_flock(fd)
            except BaseException:
                fcntl.flock(gate, fcntl.LOCK_UN)
                raise
            if took:
                fcntl.flock(gate, fcntl.LOCK_UN)
                return True
        return self._wait_for_files(_Request(has_gate), deadline)

    def _wait_for_files(self, request: _Request, deadline: float) -> bool:
        with self._file_mutex:
            self._requests.append(request)
            waiter = self._waiter
            if waiter is None or waiter[0] != os.getpid() or not waiter[1].is_alive():
                thread = threading.Thread(target=self._serve_waits, name="fair-lock-waiter",
                                          daemon=True)
                self._waiter = (os.getpid(), thread)
                thread.start()
            self._requests_ready.notify()
        try:
            granted = request.baton.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except BaseException:  # interrupted: the file must not go to a wait nobody is in
            with self._file_mutex:
                if request.state == WAITING:
                    request.state = ABANDONED
                elif request.error is None and self._files is not None:
                    fcntl.flock(self._files[0], fcntl.LOCK_UN)
            raise
        with self._file_mutex:
            if not granted and request.state == WAITING:
                # Given up: the waiter thread lets the file go when it gets it (or hands it
                # to the next request of this process, if one is waiting by then).
                request.state = ABANDONED
                return False
        if request.error is not None:
            raise request.error
        return True

    def _serve_waits(self) -> None:
        """The waiter thread: for the oldest request, the gate (unless its asker holds it),
        the lock file, then the gate let go; the file goes to the oldest request still
        waiting, or back if every one gave up. Ends after ``WAITER_IDLE`` without requests."""
        while True:
            with self._file_mutex:
                while not self._requests:
                    if not self._requests_ready.wait(self.WAITER_IDLE) and not self._requests:
                        self._waiter = None
                        return
                request = self._requests[0]
            files = self._files
            assert files is not None
            fd, gate = files
            error: BaseException | None = None
            took = False
            try:
                if not request.has_gate:
                    fcntl.flock(gate, fcntl.LOCK_EX)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    took = True
                finally:
                    fcntl.flock(gate, fcntl.LOCK_UN)
            except BaseException as exc:  # handed to the asker, whose wait raises it
                error = exc
                if took:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            with self._file_mutex:
                self._hand_over(error)

    def _hand_over(self, error: BaseException | None) -> None:
        """With ``_file_mutex`` held and the waits done: the lock file (or the error) to the
        oldest request still waiting; given up ones leave the queue."""
        assert self._files is not None
        while self._requests:
            request = self._requests.popleft()
            if request.state != WAITING:
                continue
            request.state, request.error = GRANTED, error
            request.baton.release()
            return
        if error is None:
            fcntl.flock(self._files[0], fcntl.LOCK_UN)  # nobody wants it any more

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


def _try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` if nobody else holds it; never wait."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
