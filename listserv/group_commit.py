"""Group commit: one writer thread runs units of work in arrival order, several to a transaction.

The SMTP door hands each message's work here (``inbound.store_one``). While a group commits,
the messages that arrive meanwhile queue; the writer then takes all of them (up to
``max_group``) into the next transaction. One commit, so one fsync on SQLite and fewer round
trips on PostgreSQL, serves the whole group.

Invariants:
- A unit's future resolves only after the commit that holds its writes, or with the error that
  kept them out: the SMTP door's 250 still means committed.
- Each unit runs in its own SAVEPOINT: a unit that raises is rolled back alone and the rest of
  its group still commits.
- If the group's commit itself fails, every unit of the group is run again alone, each in its
  own transaction, so one bad message cannot make the others fail.
- Units are taken first in, first out (urgent ones first: a member's post is not queued behind
  a flood of held posts, unless the oldest other unit has waited ``MAX_NORMAL_WAIT``) and a
  group's futures resolve in that order. With one writer thread
  (SQLite) they are also written in that order.
- With ``urgent_writer`` (PostgreSQL, which has no database-wide write lock) one more thread,
  in transactions of its own, writes urgent units only, so a member's post does not wait for
  the group being written (a held post and the arrivals beside it: 20-130 ms on PostgreSQL
  under a flood). The other writers still take urgent units first when they are free. Urgent
  units then commit beside other groups, so they need not touch what those groups write
  (the SMTP door's urgent unit is one INSERT into the inbound queue).
- With an urgent writer the other writers leave urgent units to it, and take them only once
  the oldest has waited ``URGENT_HELP`` (the urgent writer is behind): so during a burst of
  members' posts the pipeline's background work is still written, beside the door's inserts,
  instead of waiting for the burst to end. Arrivals are then quiet for those writers when no
  *normal* unit has arrived for ``QUIET``: urgent arrivals, and those of another process
  (``note_arrival``), do not wait behind their groups (PostgreSQL has no database-wide write
  lock).
- Background units (the inbound pipeline's: ``listserv.inbound_queue``) come last: a group
  takes ``background_share`` of them after its other units (none after urgent ones, until the
  oldest has waited ``MAX_NORMAL_WAIT``), or up to ``max_background`` when nothing else has
  arrived for ``QUIET`` seconds. Such a group gives way when other work for its writer
  arrives while it runs (``_give_way``): it commits the units it ran and puts the rest back at
  the head of the background queue, in their order, so they run next after the arrivals.
  Arrivals so never wait behind more than a share of background work (and the one unit being
  run), and background work is never stopped by a burst of arrivals.
- A unit that raises ``contention.Contended`` (it needs a lock another writer holds, while
  this transaction holds locks of earlier units: waiting could deadlock) is rolled back to its
  savepoint and steps aside: the units before it commit, and it runs first in the writer's
  next transaction, with the units after it (their order kept), where it may wait. A unit
  that steps aside ``MAX_STEP_ASIDE`` times keeps the error.
- Work registered with ``store.after_commit`` during a unit (wake-ups, logs) runs only after the
  commit that holds the unit, and not at all for a unit rolled back.
- A group made only of units submitted with ``durable=False`` (the inbound pipeline's: nobody is
  answered on their commit) commits without waiting for the WAL flush (PostgreSQL's
  asynchronous commit, SQLite's ``synchronous=NORMAL``: ``listserv.async_commit``, which says
  why that is safe); any other group waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from listserv import async_commit, write_behind
from listserv.contention import Contended
from listserv.store import Store, run_hooks, unit_hooks

log = logging.getLogger("commonroom.group_commit")

T = TypeVar("T")
MAX_GROUP = 64  # bounds a group's transaction time, and so the wait of the next arrivals
MAX_WAIT = 0.0  # seconds to linger for more units; 0: take only what queued meanwhile
BACKGROUND_SHARE = 1  # background units in a group that has others
# Background units in a group of their own, when arrivals are quiet. 32, not 8: each
# transaction costs its COMMIT, the list's and bans' reads and an outbox wake-up; 16 gave
# +13 % delivered in bench/ingest.py on both stores, 32 (with ``_give_way``) 4-8 % more. An
# arrival does not wait for such a group: the group gives way after the unit being run.
MAX_BACKGROUND = 32
QUIET = 0.05  # seconds without arrivals after which background units fill a group
MAX_NORMAL_WAIT = 0.5  # seconds a normal unit waits behind urgent ones at most
URGENT_HELP = 0.02  # seconds an urgent unit waits for the urgent writer before others help
MAX_STEP_ASIDE = 3  # times a unit is run again for Contended (first in a transaction, it waits)


@dataclass
class _Unit(Generic[T]):
    work: Callable[[Session], T]
    own_savepoints: bool = False
    durable: bool = True
    future: Future[T] = field(default_factory=Future)
    value: Any = None
    error: BaseException | None = None
    hooks: list[Callable[[], None]] = field(default_factory=list)
    queued_at: float = field(default_factory=time.monotonic)
    stepped_aside: int = 0
    background: bool = False


class GroupCommitter:
    """``submit`` work from any thread (``run`` from a coroutine); ``writers`` threads write it,
    one on SQLite (one writer at a time there anyway); on PostgreSQL, which has no database-wide
    write lock, several groups can be written at once, and ``urgent_writer`` adds a thread that
    writes urgent units only."""

    def __init__(self, store: Store, *, max_group: int = MAX_GROUP,
                 max_wait: float = MAX_WAIT, writers: int = 1,
                 background_share: int = BACKGROUND_SHARE,
                 max_background: int = MAX_BACKGROUND, urgent_writer: bool = False) -> None:
        if max_group < 1 or writers < 1:
            raise ValueError("max_group and writers must be at least 1")
        self.writers = writers
        self.urgent_writer = urgent_writer
        self.store = store
        self.max_group = max_group
        self.max_wait = max_wait
        self.background_share = background_share
        self.max_background = max_background
        lock = threading.RLock()
        self._ready = threading.Condition(lock)
        # The urgent writer waits on its own condition (same lock), so a notify for other work
        # never wakes it in place of a writer that could take that work.
        self._urgent_ready = threading.Condition(lock)
        self._urgent: deque[_Unit[Any]] = deque()
        self._normal: deque[_Unit[Any]] = deque()
        self._background: deque[_Unit[Any]] = deque()
        self._last_arrival = float("-inf")  # monotonic time of the last non-background unit
        self._last_normal = float("-inf")  # ... of the last normal unit (not urgent, not background)
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.groups = 0  # transactions committed (for benches and tests)
        self.units = 0
        self.stepped_aside = 0  # units run again for Contended
        self.gave_way = 0  # groups cut short for arrivals (``_give_way``)

    def start(self) -> None:
        if not self._threads:
            self._stopping = False
            self._threads = [threading.Thread(target=self._loop, name=f"group-commit-{n}",
                                              daemon=True) for n in range(self.writers)]
            if self.urgent_writer:
                self._threads.append(threading.Thread(
                    target=self._loop, args=(True,), name="group-commit-urgent", daemon=True))
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._threads:
            with self._ready:
                self._stopping = True
                self._ready.notify_all()
                self._urgent_ready.notify_all()
            for thread in self._threads:
                thread.join()
            self._threads = []

    def submit(self, work: Callable[[Session], T], *, urgent: bool = False,
               own_savepoints: bool = False, background: bool = False,
               durable: bool = True) -> Future[T]:
        """Queue ``work``; ``urgent`` work (a member's post, a person's request) goes in a
        group of its own ahead of the rest, so a flood of held posts does not delay it.
        ``own_savepoints``: the work rolls back what it wrote whenever it raises, so it needs no
        savepoint of the committer's (``inbound.store_one``: two statements fewer a message,
        round trips on PostgreSQL). ``background`` work waits behind everything else, see the
        module's invariants. ``durable=False``: nobody is told anything on the strength of this
        unit's commit (``listserv.async_commit`` lists what may act on its rows, and how), so a
        group of such units need not wait for the WAL flush."""
        if not self._threads:
            raise RuntimeError("the group committer is not started")
        unit: _Unit[T] = _Unit(work, own_savepoints, durable, background=background)
        with self._ready:
            queue = self._background if background else (
                self._urgent if urgent else self._normal)
            queue.append(unit)
            if not background:
                self._last_arrival = time.monotonic()
                if not urgent:
                    self._last_normal = self._last_arrival
            if urgent:
                self._urgent_ready.notify()
            self._ready.notify()
        return unit.future

    def note_arrival(self) -> None:
        """Arrivals handled elsewhere (an SMTP process) count as arrivals here: background
        units then take only their share of a group, so those arrivals' writes wait less for
        the database-wide write lock (SQLite's; with an urgent writer, PostgreSQL, they do not
        wait for this process's groups at all, and only normal units count)."""
        with self._ready:
            self._last_arrival = time.monotonic()

    def pending(self) -> int:
        """Units other than background ones waiting for the writer (for tests and benches)."""
        with self._ready:
            return len(self._urgent) + len(self._normal)

    async def run(self, work: Callable[[Session], T], *, urgent: bool = False,
                  own_savepoints: bool = False) -> T:
        return await asyncio.wrap_future(self.submit(work, urgent=urgent,
                                                     own_savepoints=own_savepoints))

    # --- the writer thread -------------------------------------------------------------------

    def _loop(self, urgent_only: bool = False) -> None:
        take = self._next_urgent_group if urgent_only else self._next_group
        while (group := take()) is not None:
            # A unit whose SMTP session went away (its future cancelled) is not written: no
            # 250 was sent for it, so its sender still has it. The others cannot be cancelled
            # from now on.
            group = [u for u in group
                     if u.future.running() or u.future.set_running_or_notify_cancel()]
            try:
                self._run_group(group)
            except BaseException:  # a bug here must not stop the writer: fail the group
                log.exception("the group committer failed a group of %d", len(group))
                for unit in group:
                    if not unit.future.done():
                        unit.future.set_exception(RuntimeError("the group committer failed"))

    def _next_group(self) -> list[_Unit[Any]] | None:
        """The next group, urgent units first (each queue first in, first out); None to stop."""
        lane = self.urgent_writer  # urgent units have a writer of their own
        with self._ready:
            while not (self._normal or self._background or self._urgent_to_help(lane)):
                if self._stopping:
                    return None
                self._ready.wait(self._help_in(lane))
            if self.max_wait > 0:
                self._ready.wait_for(
                    lambda: len(self._urgent) + len(self._normal) >= self.max_group,
                    timeout=self.max_wait)
            # Urgent first, but a normal unit that has waited too long goes next: a steady
            # stream of urgent work must not hold the rest back without end.
            overdue = bool(self._normal) and (
                time.monotonic() - self._normal[0].queued_at > MAX_NORMAL_WAIT)
            urgent = self._urgent if self._urgent_to_help(lane) else None
            source = self._normal if overdue or not urgent else urgent
            group = [source.popleft() for _ in range(min(len(source), self.max_group))]
            now = time.monotonic()
            quiet = not group and now - (self._last_normal if lane else self._last_arrival) > QUIET
            # An urgent group (a member's post, a person's request) stays short: background
            # work joins it only once the oldest has waited MAX_NORMAL_WAIT.
            held_back = source is self._urgent and bool(group) and not (
                self._background and now - self._background[0].queued_at > MAX_NORMAL_WAIT)
            room = 0 if held_back else min(
                self.max_group - len(group),
                self.max_background if quiet else self.background_share)
            group += [self._background.popleft()
                      for _ in range(min(len(self._background), room))]
            return group

    def _give_way(self, left: list[_Unit[Any]]) -> bool:
        """Between two background units of a group: if other work has arrived for this writer
        meanwhile, put the units ``left`` (background ones, not run) back at the head of their
        queue and say so; the group then commits what it ran, and the arrivals go next. So an
        arrival waits behind one background unit, not behind a whole group of them."""
        with self._ready:
            if not (self._normal or self._urgent_to_help(self.urgent_writer)):
                return False
            self._background.extendleft(reversed(left))
            self.gave_way += 1
            self._ready.notify()
            return True

    def _urgent_to_help(self, lane: bool) -> bool:
        """Whether urgent units wait for this (not urgent-only) writer: always, unless they
        have a writer of their own (``lane``) that has kept the oldest waiting less than
        ``URGENT_HELP``. Called holding the lock."""
        return bool(self._urgent) and (
            not lane or time.monotonic() - self._urgent[0].queued_at >= URGENT_HELP)

    def _help_in(self, lane: bool) -> float | None:
        """How long a writer with nothing to take waits before looking again: until the oldest
        urgent unit is due for help (``lane``), else until notified. Called holding the lock."""
        if not (lane and self._urgent):
            return None
        return max(0.0, URGENT_HELP - (time.monotonic() - self._urgent[0].queued_at)) + 0.001

    def _next_urgent_group(self) -> list[_Unit[Any]] | None:
        """The urgent writer's next group: urgent units only; None to stop."""
        with self._ready:
            while not self._urgent:
                if self._stopping:
                    return None
                self._urgent_ready.wait()
            return [self._urgent.popleft() for _ in range(min(len(self._urgent), self.max_group))]

    def _run_group(self, group: list[_Unit[Any]]) -> None:
        rest = group
        while rest:  # more than once only when a unit steps aside
            done, rest = self._run_transaction(rest)
            for unit in done:
                _resolve(unit)

    def _run_transaction(self, group: list[_Unit[Any]]) -> tuple[list[_Unit[Any]],
                                                                 list[_Unit[Any]]]:
        """Run ``group``'s units in one transaction, up to one that steps aside; commit. The
        units done (to resolve) and the rest, the one that stepped aside first."""
        done: list[_Unit[Any]] = []
        rest: list[_Unit[Any]] = []
        try:
            lazily = async_commit.lazy(u.durable for u in group)
            with self._transaction(lazily, ride=True) as session, \
                    async_commit.transaction(session, lazily):
                for n, unit in enumerate(group):
                    _run_unit(session, unit)
                    if _steps_aside(unit):
                        self._count(0, 0, aside=1)
                        rest = group[n:]
                        break
                    done.append(unit)
                    if unit.background and n + 1 < len(group) and self._give_way(group[n + 1:]):
                        break
        except Exception:
            # The commit (or the transaction around the units) failed: nothing of the group is
            # stored. Each unit again on its own, so only a unit that fails alone fails.
            log.exception("a group of %d failed to commit; retrying one by one", len(done))
            for unit in done:
                self._run_alone(unit)
        else:
            self._count(1, 0)
        self._count(0, len(done))
        return done, rest

    @contextmanager
    def _transaction(self, lazily: bool = False, ride: bool = False) -> Iterator[Session]:
        """A session committed on exit, on a connection of its own that is thrown away if the
        commit fails. A COMMIT the database refuses is rolled back by ``Store``, but a commit
        that fails before reaching the driver (a listener, an interrupted thread) leaves the
        driver inside the transaction, holding the write turn, while SQLAlchemy counts it as
        ended; throwing the connection away ends both (tests/test_group_commit.py)."""
        with self.store.engine.connect() as conn:
            async_commit.before_begin(conn, lazily)
            try:
                # A group's units' last writes ride with the next unit's first statement
                # (write_behind.riding): a failure there fails the group, run again one by one.
                with Session(bind=conn, expire_on_commit=False) as session, \
                        (write_behind.riding(conn) if ride else nullcontext()):
                    yield session
                    session.commit()
            except BaseException:
                conn.invalidate()
                raise

    def _run_alone(self, unit: _Unit[Any]) -> None:
        while True:
            unit.value, unit.error, unit.hooks = None, None, []
            try:
                with self._transaction(not unit.durable) as session, \
                        async_commit.transaction(session, not unit.durable):
                    _run_unit(session, unit)
            except Exception as exc:
                unit.value, unit.error, unit.hooks = None, exc, []
            else:
                self._count(1, 0)
            if not _steps_aside(unit):
                return
            self._count(0, 0, aside=1)

    def _count(self, groups: int, units: int, *, aside: int = 0) -> None:
        with self._ready:
            self.groups += groups
            self.units += units
            self.stepped_aside += aside


def for_store(store: Store, *, writers: int = 1) -> GroupCommitter:
    """The committer ``serve`` and its SMTP process use: on PostgreSQL ``writers`` threads
    (``[server] handling_writers``: threading locks per thread key, so two posts of one list
    are handled at once, bench/README) and an urgent writer beside them, so members' posts and
    requests do not wait for the groups being written; on SQLite one writer."""
    return GroupCommitter(store, writers=writers if store.is_postgres else 1,
                          urgent_writer=store.is_postgres)


def _run_unit(session: Session, unit: _Unit[Any]) -> None:
    """Run one unit in its own savepoint of the group's transaction; keep what it raised."""
    try:
        with unit_hooks(session) as hooks:
            if unit.own_savepoints:
                unit.value = unit.work(session)
            else:
                with session.begin_nested():
                    unit.value = unit.work(session)
        unit.hooks = hooks
    except Exception as exc:
        unit.error = exc


def _steps_aside(unit: _Unit[Any]) -> bool:
    """Whether ``unit`` (just run) is to run again in a new transaction; if so it is reset."""
    if not isinstance(unit.error, Contended) or unit.stepped_aside >= MAX_STEP_ASIDE:
        return False
    unit.stepped_aside += 1
    unit.value, unit.error, unit.hooks = None, None, []
    return True


def _resolve(unit: _Unit[Any]) -> None:
    if unit.error is not None:
        unit.future.set_exception(unit.error)
        return
    run_hooks(unit.hooks)
    unit.future.set_result(unit.value)
