"""The inbound queue: accepted mail waits here, committed, until the pipeline handles it.

The SMTP door answers 250 once the message's row is committed (``enqueue``, through the group
committer, so sessions that finish DATA together share one commit). ``Pipeline`` then hands the
rows to the same committer as background work, a few at a time; each row is handled
(``inbound.store_one``: the posting pipeline, threading, fan-out, notices) and deleted in one
transaction. Accepting a message so costs one insert, and a burst is accepted while the
pipeline follows, as an MTA's queue (or Mailman's ``in`` queue) does.

Invariants:
- Accepted means durable: the row is committed before the 250, and deleted only by the
  transaction that handled (or shunted) the message, so a crash at any moment loses nothing
  and handles nothing twice. Rows left by a stopped process are taken at the next start.
- A person's request or reply first, then members' posts, then the rest in arrival order. The
  committer gives background work a place in every group, so a burst of arrivals delays the
  pipeline but never stops it.
- During a burst (arrivals closer than ``BURST_GAP`` apart) posts are held back from the
  committer, so accepting has the CPU and the write lock to itself, until arrivals pause for
  ``BURST_GAP`` or the oldest held post has waited ``MAX_HOLD``: then the pipeline hands
  rows over as before (``hold_until``). A request is never held, and a member's post only
  during a burst of members' posts (not in a flood of posts from non-members).
- On PostgreSQL several processes share the table: the handling transaction locks its row
  (``FOR UPDATE SKIP LOCKED``) and a row that is gone or taken is skipped. In the group
  committer's transactions that lock read rides with the message's first read and is looked at
  before the message's writes go (``_finish``); if it came back empty, the message's savepoint
  is rolled back (``contention.Gone``) and nothing of it is kept.
- A handling that raises (only when even shunting failed: ``store_one`` shunts a bug) leaves the
  row with ``attempts`` + 1; later sweeps try it again, and after ``MAX_ATTEMPTS`` it waits for a
  person (``commonroom queue list --inbound``; logged each time).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlmodel import Session

from listserv import accept, contention, shunt, write_behind
from listserv.accept import Delivery, Prepared
from listserv.config import Config
from listserv.group_commit import GroupCommitter
from listserv.message import parse
from listserv.models import InboundMessage
from listserv.store import Store

log = logging.getLogger("commonroom.inbound_queue")

INBOUND: Table = InboundMessage.__table__  # type: ignore[attr-defined]
MAX_ATTEMPTS = 5
IN_FLIGHT = 32  # rows handed to each writer at once: enough to fill a quiet group (MAX_BACKGROUND)
SWEEP_EVERY = 10.0  # seconds between looks for rows this process was not told about
BURST_GAP = 0.05  # seconds: arrivals closer than this are a burst, during which posts wait
MAX_HOLD = 2.0  # seconds a post accepted during a burst waits for the pipeline at most
KEEP_PARSED = 2_000  # accepted messages whose parse is kept in memory for the pipeline


# --- the store's side: pure of everything but the session ----------------------------------

def enqueue(session: Session, p: Prepared, urgent: bool) -> int:
    """Keep an accepted message for the pipeline; its row id."""
    return enqueue_many(session, [(p, urgent)])[0]


def enqueue_many(session: Session, messages: Sequence[tuple[Prepared, bool]]) -> list[int]:
    """Keep accepted messages (each with its ``urgent``) for the pipeline in one statement (a
    multi-row INSERT): their row ids, in order. Nothing is written if it raises."""
    if not messages:
        return []
    # The Core connection and a statement built once: the ORM session's execute and building
    # the statement for each message cost more CPU than the INSERT's own run (bench/README).
    rows = [_row(p, urgent) for p, urgent in messages]
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return [int(i) for i in conn.execute(_INSERT_ORDERED, rows).scalars()]
    # SQLite: asked to keep the rows' order, SQLAlchemy sends one INSERT per row; but one
    # INSERT gives its rows ascending rowids (max + 1 each, table without AUTOINCREMENT) in
    # the order of its VALUES, so the ids sorted are the rows' ids in order, whatever order
    # RETURNING gives them in.
    return sorted(int(i) for i in conn.execute(_INSERT, rows).scalars())


def _row(p: Prepared, urgent: bool) -> dict[str, Any]:
    d = p.delivery
    return {"received_at": d.received_at, "envelope_from": d.envelope_from,
            "destinations": shunt.envelope_to(d.destinations), "dmarc_policy": d.dmarc_policy,
            "urgent": urgent, "attempts": 0, "last_error": "", "raw": p.raw}


def handle(session: Session, cfg: Config, row_id: int, known: Prepared | None = None) -> bool | None:
    """Handle queued message ``row_id`` and delete its row, in the caller's transaction. None
    when the row is gone or another process holds it; else ``store_one``'s answer. ``known``:
    the message as the SMTP door prepared it, to save reading and parsing it again."""
    # Run by the group committer, which runs a unit that steps aside again (contention.py).
    contention.allow_stepping_aside(session)
    # In a write-behind scope (PostgreSQL), store_one's SAVEPOINT rides with its first read.
    with write_behind.scope(session):
        return _handle(session, cfg, row_id, known)


def _handle(session: Session, cfg: Config, row_id: int, known: Prepared | None) -> bool | None:
    if known is not None:
        # The message is in hand: the row's lock rides with its first read (in the group
        # committer's transactions, write_behind.read_later), and is looked at before its
        # writes go out (``_finish``). Another process that took the row meanwhile (rare:
        # sweeps) costs that message's work here, rolled back, not a round trip each message.
        taken = write_behind.read_later(session, _TAKE_ID, {"row_id": row_id})
        try:
            return _store(session, cfg, row_id, known, taken)
        except contention.Gone:
            return None
    # On the driver's cursor on PostgreSQL (write_behind.rows): a statement each message.
    found = write_behind.rows(session, _TAKE_ROW, {"row_id": row_id})
    if not found:
        return None
    envelope_from, destinations, dmarc_policy, raw, received_at = found[0]
    d = Delivery(envelope_from=envelope_from,
                 destinations=tuple(shunt.destinations(destinations)), raw=raw,
                 dmarc_policy=dmarc_policy, received_at=received_at)
    return _store(session, cfg, row_id, Prepared(d, raw, parse(raw, domain=cfg.server.domain)),
                  None)


def _store(session: Session, cfg: Config, row_id: int, known: Prepared,
           taken: write_behind.Later | None) -> bool:
    from listserv.inbound import store_one  # the whole pipeline: not in the SMTP process

    # The row's delete goes with the message's own writes, in one round trip on PostgreSQL.
    return store_one(session, cfg, known, finish=partial(_finish, row_id=row_id, taken=taken))


def _finish(session: Session, *, row_id: int, taken: write_behind.Later | None) -> None:
    """The message's last write, in its savepoint: the row's delete; ``contention.Gone`` (the
    savepoint rolled back) if the row's lock read came back empty."""
    if taken is not None and not taken.rows():
        raise contention.Gone(f"inbound row {row_id} is gone or another process has it")
    write_behind.defer(session, _DELETE, {"row_id": row_id})


# Built once (as lists.find's): building them for each message cost more Python than the
# statements' own run (py-spy of bench/ingest.py).
_TAKE_ID = (select(INBOUND.c.id).where(INBOUND.c.id == bindparam("row_id"))
            .with_for_update(skip_locked=True))
_TAKE_ROW = (select(INBOUND.c.envelope_from, INBOUND.c.destinations, INBOUND.c.dmarc_policy,
                    INBOUND.c.raw, INBOUND.c.received_at)
             .where(INBOUND.c.id == bindparam("row_id"))
             .with_for_update(skip_locked=True))
_DELETE = delete(INBOUND).where(INBOUND.c.id == bindparam("row_id"))
# With several rows, SQLAlchemy's "insertmanyvalues" sends one INSERT … VALUES (…), (…)
# RETURNING id; on PostgreSQL the ordered one gives the ids in the rows' order.
_INSERT = insert(INBOUND).returning(INBOUND.c.id)
_INSERT_ORDERED = insert(INBOUND).returning(INBOUND.c.id, sort_by_parameter_order=True)


def record_failure(session: Session, row_id: int, error: str) -> None:
    session.execute(update(INBOUND).where(INBOUND.c.id == row_id).values(
        attempts=INBOUND.c.attempts + 1, last_error=error[:1000]))


def retry(session: Session, row_id: int) -> bool:
    """Give a queued row its attempts back (a person fixed the cause); False if there is none."""
    done = session.execute(update(INBOUND).where(INBOUND.c.id == row_id).values(
        attempts=0, last_error=""))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def waiting(session: Session, limit: int = 1000) -> list[tuple[int, bool]]:
    """Rows still to try, urgent first then oldest: (id, urgent)."""
    rows = session.execute(select(INBOUND.c.id, INBOUND.c.urgent)
                           .where(INBOUND.c.attempts < MAX_ATTEMPTS)
                           .order_by(INBOUND.c.urgent.desc(), INBOUND.c.id).limit(limit))
    return [(int(r.id), bool(r.urgent)) for r in rows]


@dataclass(frozen=True)
class Waiting:
    id: int
    envelope_from: str
    destinations: str
    received_at: datetime
    attempts: int
    last_error: str


def listing(session: Session) -> list[Waiting]:
    """Every queued row, oldest first (``commonroom queue list --inbound``)."""
    rows = session.execute(select(INBOUND.c.id, INBOUND.c.envelope_from, INBOUND.c.destinations,
                                  INBOUND.c.received_at, INBOUND.c.attempts,
                                  INBOUND.c.last_error).order_by(INBOUND.c.id))
    return [Waiting(int(r.id), r.envelope_from, r.destinations, r.received_at, int(r.attempts),
                    r.last_error) for r in rows]


# --- the pipeline's feeder, on the event loop ------------------------------------------------

def hold_until(now: float, last_arrival: float, burst: bool, oldest: float | None, *,
               gap: float = BURST_GAP, max_hold: float = MAX_HOLD) -> float | None:
    """Until when (monotonic seconds) held posts wait for the pipeline, or None: hand them
    over now. They wait while a ``burst`` goes on (the last arrival came less than ``gap`` after
    the one before, and less than ``gap`` ago), never longer than ``max_hold`` after the oldest
    (``oldest``: when it was accepted; None when nothing is held). Pure."""
    if oldest is None or not burst:
        return None
    until = min(last_arrival + gap, oldest + max_hold)
    return until if now < until else None


PROMPT, URGENT, NORMAL = 0, 1, 2  # a row's rank in the pipeline's heap: lowest first


class Pipeline:
    """Feeds queued rows to the group committer, urgent first, ``in_flight`` at a time.

    ``accepted`` is called on the event loop after the commit that holds a new row;
    ``on_handled`` (the outbox worker's wake) after each commit that handled one."""

    def __init__(self, store: Store, cfg: Config, committer: GroupCommitter,
                 on_handled: Callable[[], None], *, in_flight: int | None = None,
                 sweep_every: float = SWEEP_EVERY, burst_gap: float = BURST_GAP,
                 max_hold: float = MAX_HOLD) -> None:
        self.store, self.cfg, self.committer = store, cfg, committer
        self.on_handled = on_handled
        # A group's worth per writer: with fewer, one writer takes them all and the other idles.
        self.in_flight_limit = in_flight or IN_FLIGHT * committer.writers
        self.sweep_every = sweep_every
        self.burst_gap, self.max_hold = burst_gap, max_hold
        self._heap: list[tuple[int, int]] = []  # (rank, id): PROMPT, URGENT, NORMAL; oldest
        self._known: set[int] = set()  # in the heap or in flight
        # When each row in the heap that may be held (a post this process was told about) was
        # accepted. The heap's first row of a rank is its oldest (ids follow commit order).
        self._held_at: dict[int, float] = {}
        self._unheld: set[int] = set()  # in the heap, never held (swept): while any, none is
        # The arrivals a rank's burst is made of: members' posts for URGENT, any for NORMAL.
        self._last_arrival = {URGENT: float("-inf"), NORMAL: float("-inf")}
        self._burst = {URGENT: False, NORMAL: False}
        self._prepared: dict[int, Prepared] = {}
        self._failed_at: dict[int, float] = {}  # rows whose handling raised here: when
        self._flying = 0
        self._last_sweep = float("-inf")
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self.idle_since: float | None = None  # when it last became idle (monotonic); None: busy
        self._task: asyncio.Task[None] | None = None
        self.handled = 0  # rows handled by this process (benches, tests)

    async def start(self) -> None:
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        await self._sweep()  # what an earlier run left
        self._task = asyncio.create_task(self._run(), name="inbound-pipeline")

    async def stop(self) -> None:
        """Stop handing rows over; wait for those handed over. The rest wait for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + 30
        while self._flying and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def accepted(self, row_id: int, urgent: bool, prepared: Prepared | None = None, *,
                 prompt: bool | None = None) -> None:
        """A new row is committed (on the event loop). ``prompt``: a person waits on it (a
        request, ``accept.prompt``), so it is never held; found from ``prepared`` if None."""
        self.committer.note_arrival()  # arrivals flow: keep the pipeline's groups short
        now = time.monotonic()
        if prompt is None:
            prompt = prepared is not None and accept.prompt(prepared)
        rank = PROMPT if prompt else URGENT if urgent else NORMAL
        for counted in (URGENT, NORMAL) if rank == URGENT else (NORMAL,):
            self._burst[counted] = now - self._last_arrival[counted] < self.burst_gap
            self._last_arrival[counted] = now
        if row_id in self._known:
            return
        if prepared is not None and len(self._prepared) < KEEP_PARSED:
            self._prepared[row_id] = prepared
        if rank != PROMPT:
            self._held_at[row_id] = now
        self._push(row_id, rank)

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until the queue holds nothing this process could take (tests, benches); rows
        it was not told about yet (from an SMTP process, another process) are swept in."""
        assert self._idle is not None, "the pipeline is not started"
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                await self._sweep()
                if self._idle.is_set():
                    return

    def _push(self, row_id: int, rank: int) -> None:
        self._known.add(row_id)
        heapq.heappush(self._heap, (rank, row_id))
        assert self._wake is not None and self._idle is not None
        self._idle.clear()
        self.idle_since = None
        self._wake.set()

    async def _sweep(self) -> None:
        self._last_sweep = time.monotonic()

        def read() -> list[tuple[int, bool]]:
            with self.store.read_session() as s:
                return waiting(s)
        try:
            rows = await asyncio.to_thread(read)
        except Exception:
            log.exception("could not read the inbound queue; trying again later")
            return
        now = time.monotonic()
        for row_id, urgent in rows:
            # A row that failed here is tried again a sweep later, not at once.
            if row_id not in self._known and now - self._failed_at.get(
                    row_id, float("-inf")) >= self.sweep_every:
                self._unheld.add(row_id)  # found late already: never held
                self._push(row_id, URGENT if urgent else NORMAL)
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._known and self._idle is not None:
            if not self._idle.is_set():
                self.idle_since = time.monotonic()
            self._idle.set()

    def _hold_until(self, now: float) -> float | None:
        """Until when the heap's first row (the oldest of the best rank) and so every row
        after it is held (``hold_until``), or None."""
        rank, row_id = self._heap[0]
        if rank == PROMPT or self._unheld:
            return None
        return hold_until(now, self._last_arrival[rank], self._burst[rank],
                          self._held_at.get(row_id), gap=self.burst_gap, max_hold=self.max_hold)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            hold = None
            while self._heap and self._flying < self.in_flight_limit:
                # The best row left waits if its rank is held (those after it rank lower).
                if (hold := self._hold_until(time.monotonic())) is not None:
                    break
                _, row_id = heapq.heappop(self._heap)
                self._hand_over(row_id)
            self._check_idle()
            self._wake.clear()
            if not self._heap and not self._flying:
                due = self._last_sweep + self.sweep_every - time.monotonic()
                if due <= 0:
                    await self._sweep()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due)
            elif hold is not None and self._flying < self.in_flight_limit:
                with contextlib.suppress(TimeoutError):  # until the burst pauses, or woken
                    await asyncio.wait_for(self._wake.wait(), max(hold - time.monotonic(), 0))
            else:
                await self._wake.wait()

    def _hand_over(self, row_id: int) -> None:
        self._held_at.pop(row_id, None)
        self._unheld.discard(row_id)
        work = partial(handle, cfg=self.cfg, row_id=row_id,
                       known=self._prepared.pop(row_id, None))
        # Not durable: nobody is answered on a handling's commit (listserv.async_commit).
        future = asyncio.wrap_future(self.committer.submit(work, background=True,
                                                           own_savepoints=True, durable=False))
        self._flying += 1
        future.add_done_callback(partial(self._done, row_id))

    def _done(self, row_id: int, future: asyncio.Future[bool | None]) -> None:
        self._flying -= 1
        self._known.discard(row_id)
        error = future.exception() if not future.cancelled() else None
        if error is not None:
            self._failed_at[row_id] = time.monotonic()
            log.error("handling inbound message %s failed; it stays queued", row_id,
                      exc_info=error, extra={"inbound_id": row_id})
            # Stopping (RuntimeError): the next start tries it again, uncounted.
            with contextlib.suppress(RuntimeError):
                self.committer.submit(partial(record_failure, row_id=row_id,
                                              error=f"{type(error).__name__}: {error}"),
                                      background=True, own_savepoints=True, durable=False)
        elif future.result() is not None:
            self._failed_at.pop(row_id, None)
            self.handled += 1
            self.on_handled()
        assert self._wake is not None
        self._wake.set()
