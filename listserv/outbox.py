"""Durable delivery: the worker that drains the ``outbox`` table through a transport.

Everything that leaves Commonroom is first an ``outbox`` row, committed together with the
decision that made it (an accepted post, a confirmation notice). The worker claims due rows in
batches, hands them to ``connections`` sender tasks (each with its own transport, so SMTP
connections are reused across messages), and writes the outcomes back in batches.

Invariants:
- A row is ``sending`` only while a live worker has it in memory; ``claimed_by`` names that
  worker. Delivery is at-least-once: a worker that dies between the smarthost's 250 and the
  write-back leaves ``sending`` rows, which are sent again after recovery; nothing else is ever
  sent twice.
- Claiming is one UPDATE … RETURNING over at most ``batch`` due rows (with ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL, so workers sharing the table never claim the same row). Outcomes are
  written by one transaction per flush, not one per message.
- Memory is bounded: at most ``batch`` claimed rows wait in the queue, plus two per sender
  (one sending, and with a chaining transport the next, taken and rendered to go with it);
  write-backs keep ids and addresses, not payloads. Recipients are never loaded wholesale.
- All database calls run in worker threads (``asyncio.to_thread``): the event loop, which
  also serves SMTP, never waits on the database.
- On PostgreSQL each worker holds a session-level advisory lock on its id for its whole life
  (``outbox_lease.Lease``).
  Recovery resets another worker's ``sending`` rows only when it can take that lock, i.e. when
  that worker's database session is gone; a live worker's rows are never stolen. On SQLite
  (one process) every ``sending`` row at start-up belongs to a dead worker.
- The worker's lease is that advisory lock's connection. It is checked every
  ``lease_interval`` seconds (as the scheduler checks its leader lock); while it is lost the
  worker claims nothing and gives back what it has not started, until it holds its id again.
- ``attempts`` counts deliveries tried, including the successful one. A 4xx (or a connection
  failure) schedules a retry with exponential back-off; once the row has been queued for
  ``give_up_after`` (from ``created_at``, or ``requeued_at`` after 'outbox retry'), a 4xx makes
  it ``failed``. A 5xx makes the row ``bounced``. Both record a ``Bounce`` (its RFC 3463
  status and the smarthost's reply) in the transaction that writes the outcome.
- Those bounces are scored by ``on_undelivered`` (``smtp_bounces.score``, as a DSN would be)
  in the same transaction, once per write-back and only when it has any: a crash loses the
  outcome and its count together (the copy is then sent again, refused again and counted
  once), never the count alone. Scoring runs in a SAVEPOINT: if it fails, it is logged and
  rolled back alone, and the outcomes are still written (retrying would send nothing new).
- Restarts keep back-offs: only rows that were ``sending`` when their worker died are made due
  at once, so a restart burns no retries of rows that are waiting.
- Notices (``priority`` 0) are claimed before fan-out copies (1), whatever their due times.
- Rendering runs in a worker thread too: a cache miss reads the store and prepares the post.
  Only what costs next to nothing stays on the loop (``_ready``): a notice's payload, or a
  copy of a post the renderer has cached (``CachedRender.cached``: one HMAC and a join), and
  neither when signing is on; the thread hop cost more than such a copy. Senders that miss
  the same post at once make one hop: the others wait for it, then take the copy cached. A
  renderer that can (``WarmRender``) prepares the posts of claimed rows in the claim's
  thread, after its commit, so their copies need no hop at all.
- Every copy (post, digest, notice) passes ``_finished`` on its way to the transport, where it
  is DKIM-signed when a signer is given: nothing leaves unsigned once signing is configured
  (``_ready`` gives way to ``_finished`` whenever there is a signer).
- Sent rows are deleted ``keep_sent`` after they were sent (checked every ``prune_interval``).
- ``counts`` tallies this worker's written outcomes (sent, retried, bounced, failed) since it
  started, after each commit: /metrics reads them, since sent rows are pruned from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Table,
    Update,
    any_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlmodel import Session

from listserv.backoff import backoff
from listserv.bounce_parse import reply_status
from listserv.models import Bounce, Outbox, OutboxPriority, OutboxState, utcnow
from listserv.outbox_admin import in_state, prune_sent
from listserv.outbox_lease import Lease, recover_dead
from listserv.store import PLAN_EACH_TIME, Store, among_ints
from listserv.transports import Chaining, Copy, Outcome, SendResult, Transport

log = logging.getLogger("commonroom.outbox")

OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]
BOUNCE: Table = Bounce.__table__  # type: ignore[attr-defined]

CHUNK = 500  # ids per IN (...) list: well inside every backend's parameter limit

PENDING, SENDING = OutboxState.PENDING.value, OutboxState.SENDING.value
SENT, BOUNCED, FAILED = OutboxState.SENT.value, OutboxState.BOUNCED.value, OutboxState.FAILED.value

_jitter = random.Random()


def backoff_seconds(attempts: int) -> float:
    """Delay before the next try after ``attempts`` failed ones: 30 s doubling, about 1 h max.

    The ±20 % jitter spreads out retries of a large post that all failed at the same moment.
    """
    return backoff(attempts, 30.0, 3600.0) * _jitter.uniform(0.8, 1.2)


def notice_row(*, list_id: int | None, recipient: str, sender: str, payload: bytes,
               priority: OutboxPriority, now: datetime) -> dict[str, Any]:
    """The outbox row ``enqueue_notice`` adds, for a core ``INSERT`` where a flood adds many
    (held posts: no ORM object to flush at the next query). Pure."""
    return {"list_id": list_id, "recipient": recipient, "sender": sender,
            "priority": priority.value, "state": OutboxState.PENDING.value,
            "next_attempt_at": now, "created_at": now, "payload": payload}


def enqueue_notice(session: Session, *, list_id: int | None, recipient: str, sender: str,
                   payload: bytes, priority: OutboxPriority = OutboxPriority.NOTICE) -> Outbox:
    """Queue one ready-made message (a confirmation, a reply to a command, a bounce notice).

    ``priority`` BULK is for notices that come in floods (about held posts), so they queue with
    members' copies instead of ahead of them. The row is committed with the caller's session;
    call ``OutboxWorker.wake`` afterwards.
    """
    row = Outbox(list_id=list_id, recipient=recipient, sender=sender, payload=payload,
                 priority=priority.value)
    session.add(row)
    return row


@runtime_checkable
class CachedRender(Protocol):
    """A post renderer that can answer from its cache alone (``delivery.PostRenderer``)."""

    def cached(self, message_pk: int, recipient: str) -> bytes | None:
        """The copy if the post is prepared, else None; never reads the store."""
        ...


@runtime_checkable
class WarmRender(Protocol):
    """A post renderer that can prepare posts ahead of their copies (``delivery.PostRenderer``)."""

    def warm(self, message_pks: Sequence[int]) -> None:
        """Prepare those posts it can without waiting on the network; never raises for one."""
        ...


# Posts prepared ahead per claim: well inside the renderer's cache (delivery.CACHE_POSTS, 64),
# so none is evicted before its copies go.
WARM_POSTS = 32


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    list_id: int | None
    message_pk: int | None
    digest_id: int | None
    payload: bytes | None
    recipient: str
    sender: str
    attempts: int
    queued_at: datetime  # what give_up_after counts from
    priority: int


@dataclass(frozen=True, slots=True)
class Done:
    """A finished try, kept until it is written back (no payload: memory stays small)."""

    id: int
    list_id: int | None
    recipient: str
    sender: str  # shared with the Claimed row, not a copy
    copy: bool  # a member's copy of a post or digest, not a ready-made notice
    attempts: int  # before this try
    queued_at: datetime
    result: SendResult


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A row that will never be delivered (a 5xx, or a 4xx past ``give_up_after``), as
    recorded in ``Bounce`` row ``bounce_id``: what ``on_undelivered`` is given."""

    bounce_id: int
    list_id: int | None
    recipient: str
    sender: str
    copy: bool
    status: str  # RFC 3463, e.g. "5.1.1"
    reply: str  # the smarthost's words: "550 5.1.1 No such user"


class OutboxWorker:
    def __init__(self, store: Store, transport_factory: Callable[[], Transport],
                 render: Callable[[int, str], bytes], *, connections: int,
                 give_up_after: timedelta = timedelta(days=5),
                 keep_sent: timedelta = timedelta(days=30),
                 batch: int = 200, poll_interval: float = 1.0,
                 clock: Callable[[], datetime] = utcnow,
                 backoff: Callable[[int], float] = backoff_seconds,
                 recover_interval: float = 60.0, flush_interval: float = 0.1,
                 lease_interval: float = 5.0, prune_interval: float = 3600.0,
                 render_digest: Callable[[int, str], bytes] | None = None,
                 sign: Callable[[bytes], bytes] | None = None,
                 on_undelivered: Callable[[Session, Sequence[Undelivered], datetime], object]
                 | None = None) -> None:
        if connections < 1 or batch < 1:
            raise ValueError("connections and batch must be at least 1")
        if give_up_after <= timedelta(0) or keep_sent <= timedelta(0):
            raise ValueError("give_up_after and keep_sent must be positive")
        self.store = store
        self.transport_factory = transport_factory
        self.render = render
        # A cached post's copies are rendered on the loop (see _ready).
        self._cached = render.cached if isinstance(render, CachedRender) else None
        self._warm = render.warm if isinstance(render, WarmRender) else None
        self.render_digest = render_digest  # (digest copy id, recipient) -> that member's copy
        self.sign = sign  # finished bytes -> the same with a DKIM-Signature (listserv/dkim.py)
        self.on_undelivered = on_undelivered  # (session, bounces, now), in their write-back
        self.connections = connections
        self.give_up_after = give_up_after
        self.keep_sent = keep_sent
        self.lease_interval = lease_interval
        self.prune_interval = prune_interval
        self.batch = batch
        self.poll_interval = poll_interval
        self.clock = clock
        self.backoff = backoff
        self.recover_interval = recover_interval
        # Outcomes are written when a batch of them is ready, nothing is left to send, or this
        # many seconds passed: few transactions, and a crash re-sends at most that much.
        self.flush_interval = flush_interval
        self.worker_id = 0  # set by start(); the claimed_by of this worker's rows
        self._low_water = max(batch // 2, connections)
        self._queue: asyncio.Queue[Claimed | None] = asyncio.Queue()
        self._done: list[Done] = []
        self._released: list[int] = []
        self._writing = False  # outcomes taken from _done are being written or handed over
        self._in_flight: dict[int, Claimed] = {}  # by row id
        self._rendering: dict[int, asyncio.Future[None]] = {}  # post pk -> its miss's thread
        self._wake = asyncio.Event()
        self._need_more = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._stopping = False
        self._closing_writer = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lease = Lease(store)
        # Claims and most write-backs are one statement: on PostgreSQL each runs in
        # autocommit, one round trip instead of BEGIN, the statement and COMMIT.
        self._one = store.one_statement()
        self._claim_stmt = _claim_statement(store.is_postgres)
        self._sent, self._release = _sent_and_release(store.is_postgres)
        self._lease_ok = True  # False while the advisory lock's connection is lost (PostgreSQL)
        self._feeder: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._recoverer: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self.counts: Counter[str] = Counter()

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._take_identity)
        recovered = await asyncio.to_thread(self._recover_at_start)
        if recovered:
            log.info("outbox recovery made %d rows due now", recovered,
                     extra={"worker": self.worker_id, "rows": recovered})
        self._senders = [asyncio.create_task(self._sender(i), name=f"outbox-sender-{i}")
                         for i in range(self.connections)]
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")
        self._feeder = asyncio.create_task(self._feed_loop(), name="outbox-feeder")
        if self.store.is_postgres:
            self._recoverer = asyncio.create_task(self._recover_loop(), name="outbox-recovery")
        self._keeper = asyncio.create_task(self._upkeep_loop(), name="outbox-upkeep")

    def wake(self) -> None:
        """New rows are committed: claim now rather than at the next poll. Thread-safe."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let in-flight sends finish (up to ``grace`` s), release the rest."""
        if self._feeder is None:
            return
        self._stopping = True
        self._wake.set()
        self._need_more.set()
        for task in (self._recoverer, self._keeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(self._feeder, return_exceptions=True)
        while not self._queue.empty():
            row = self._queue.get_nowait()
            if row is not None:
                self._released.append(row.id)
        for _ in self._senders:
            self._queue.put_nowait(None)
        _, late = await asyncio.wait(self._senders, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        self._released.extend(row.id for row in self._in_flight.values())
        self._in_flight.clear()
        self._closing_writer = True
        self._flush_now.set()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await asyncio.to_thread(self._drop_identity)
        self._feeder = None

    async def drain(self, timeout: float = 10.0) -> None:
        """Return once no row is ``sending`` or due ``pending`` (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        self.wake()
        while self._busy() or await asyncio.to_thread(self._has_due_work):
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox still has due rows after {timeout} s")
            await asyncio.sleep(0.02)

    def _busy(self) -> bool:
        # Work in memory means "not drained" without asking the database, which keeps the
        # polling of drain() off the database while a large batch is on its way.
        return bool(not self._queue.empty() or self._in_flight or self._done or self._released
                    or self._writing)

    # --- the tasks -----------------------------------------------------------------------

    async def _feed_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before claiming, so a wake() during the claim is not lost
            if not self._lease_ok:  # another worker may be resetting our rows: claim nothing
                await _wait(self._wake, self.poll_interval)
                continue
            room = self.batch - self._queue.qsize()
            try:
                rows = await asyncio.to_thread(self._claim, room)
            except Exception:
                log.exception("outbox claim failed; trying again", extra={"worker": self.worker_id})
                await _wait(self._wake, self.poll_interval)
                continue
            for row in rows:
                self._queue.put_nowait(row)
            if len(rows) < room:  # nothing more is due: sleep until woken or the next poll
                await _wait(self._wake, self.poll_interval)
            elif self._queue.qsize() > self._low_water:
                self._need_more.clear()
                await self._need_more.wait()

    async def _sender(self, index: int) -> None:
        transport = self.transport_factory()
        # A chaining transport is given the next row with this one (see Chaining), so it is
        # taken from the queue and rendered before this one is sent, when one is waiting.
        chain = transport.send_then if isinstance(transport, Chaining) else None
        ahead: tuple[Claimed, bytes | SendResult] | None = None  # taken and rendered
        try:
            while True:
                if ahead is None:
                    row = await self._queue.get()
                    if row is None:
                        return
                    self._take(row)
                    ready = await self._prepare(row)
                else:
                    row, ready = ahead
                    ahead = None
                if isinstance(ready, SendResult):
                    result = ready
                elif chain is None:
                    result = await self._deliver(transport.send, row, ready)
                else:
                    then: Copy | None = None
                    if (following := self._take_waiting()) is not None:
                        ahead = (following, await self._prepare(following))
                        if isinstance(ahead[1], bytes):
                            then = Copy(following.sender, following.recipient, ahead[1])
                    result = await self._deliver(
                        functools.partial(chain, then=then), row, ready)
                del self._in_flight[row.id]
                self._done.append(Done(
                    row.id, row.list_id, row.recipient, row.sender,
                    row.message_pk is not None or row.digest_id is not None, row.attempts,
                    row.queued_at, result))
                # Write back a full batch, or once nothing is left to send: not after each
                # copy while the last few of a claim are still going (one write-back per claim
                # rather than one per sender, when delivery waits on new posts).
                if len(self._done) >= self.batch or (self._queue.empty() and not self._in_flight):
                    self._flush_now.set()
        finally:
            try:
                await transport.close()
            except Exception:
                log.exception("closing a transport failed")

    def _take(self, row: Claimed) -> None:
        if self._queue.qsize() <= self._low_water:
            self._need_more.set()
        self._in_flight[row.id] = row

    def _take_waiting(self) -> Claimed | None:
        """The next queued row if one is waiting (taken, in flight), else None; never waits.
        A stop's None is put back for the sender's next ``get``."""
        try:
            row = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if row is None:
            self._queue.put_nowait(None)
            return None
        self._take(row)
        return row

    async def _prepare(self, row: Claimed) -> bytes | SendResult:
        """The bytes to send, or the outcome when there are none to send."""
        try:
            data = await self._render(row)
            if data is None:
                return SendResult(Outcome.RETRY, 0, "outbox row has no payload, message or digest to send")
        except Exception as e:  # a bug in rendering: retrying lets a fixed deploy send it
            log.exception("rendering outbox row failed", extra=_extra(row))
            return SendResult(Outcome.RETRY, 0, f"render failed: {e!r}")
        return data

    async def _deliver(self, send: Callable[[str, str, bytes], Awaitable[SendResult]],
                       row: Claimed, data: bytes) -> SendResult:
        try:
            return await send(row.sender, row.recipient, data)
        except Exception as e:  # transports return outcomes; an exception here is a bug
            log.exception("transport raised", extra=_extra(row))
            return SendResult(Outcome.RETRY, 0, f"transport error: {e!r}")

    async def _render(self, row: Claimed) -> bytes | None:
        """The bytes to send: on the loop when they cost next to nothing, else in a thread (a
        renderer's cache miss reads the store and prepares the post, and signing is a
        private-key operation; neither may stall the SMTP door on this loop). Senders that
        miss the same post together wait for the first one's thread, then take the cache."""
        data = self._ready(row)
        if data is not None:
            return data
        pk = row.message_pk
        if pk is None or row.payload is not None or self._cached is None or self.sign is not None:
            return await asyncio.to_thread(self._finished, row)
        busy = self._rendering.get(pk)
        if busy is not None:
            await asyncio.wait((busy,))  # not ``await busy``: our cancellation is not its
            data = self._ready(row)
            return data if data is not None else await asyncio.to_thread(self._finished, row)
        busy = self._rendering[pk] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.to_thread(self._finished, row)
        finally:
            del self._rendering[pk]
            busy.set_result(None)

    def _ready(self, row: Claimed) -> bytes | None:
        """The bytes to send when they cost next to nothing (fit for the event loop), else
        None: then ``_finished`` makes them in a thread. Never when signing is on."""
        if self.sign is not None:
            return None
        if row.payload is not None:
            return row.payload
        if row.message_pk is not None and self._cached is not None:
            return self._cached(row.message_pk, row.recipient)
        return None

    def _finished(self, row: Claimed) -> bytes | None:
        """The bytes handed to the transport: the only place every outgoing copy passes."""
        if row.payload is not None:
            data = row.payload
        elif row.message_pk is not None:
            data = self.render(row.message_pk, row.recipient)
        elif row.digest_id is not None and self.render_digest is not None:
            data = self.render_digest(row.digest_id, row.recipient)
        else:
            return None
        return data if self.sign is None else self.sign(data)

    async def _write_loop(self) -> None:
        while True:
            await _wait(self._flush_now, self.flush_interval)
            self._flush_now.clear()
            done, self._done = self._done, []
            released, self._released = self._released, []
            if done or released:
                self._writing = True
                try:
                    undelivered = await asyncio.to_thread(self._write, done, released)
                except Exception:
                    log.exception("outbox write-back failed; keeping the outcomes to retry",
                                  extra={"worker": self.worker_id})
                    self._done[:0], self._released[:0] = done, released
                    self._writing = False
                    if self._closing_writer:
                        return  # the rows stay 'sending' and recovery re-sends them
                    await asyncio.sleep(self.poll_interval)
                    continue
                if undelivered:
                    self._wake.set()  # scoring may have queued notices (disabled, owners told)
                self._writing = False
            if self._closing_writer and not self._done and not self._released:
                return

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(self.recover_interval)
            try:
                if await asyncio.to_thread(self._recover_dead):
                    self._wake.set()
            except Exception:
                log.exception("outbox recovery failed", extra={"worker": self.worker_id})

    async def _upkeep_loop(self) -> None:
        """Check the lease (PostgreSQL) and prune old sent rows, each on its own interval."""
        next_prune = 0.0
        while True:
            try:
                if self.store.is_postgres:
                    await self._check_lease()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.prune_interval
                    pruned = await asyncio.to_thread(prune_sent, self.store,
                                                     self.clock() - self.keep_sent)
                    if pruned:
                        log.info("outbox pruned %d sent rows", pruned,
                                 extra={"worker": self.worker_id, "rows": pruned})
            except Exception:
                log.exception("outbox upkeep failed", extra={"worker": self.worker_id})
            await asyncio.sleep(self.lease_interval if self.store.is_postgres
                                else self.prune_interval)

    async def _check_lease(self) -> None:
        if await asyncio.to_thread(self._still_holding):
            return
        if self._lease_ok:
            log.error("outbox worker lost its lease connection; claiming nothing until it is "
                      "back", extra={"worker": self.worker_id})
            self._lease_ok = False
            while not self._queue.empty():  # not started: give back rather than race recovery
                row = self._queue.get_nowait()
                if row is not None:
                    self._released.append(row.id)
            self._need_more.set()
        if await asyncio.to_thread(self._retake_identity):
            log.warning("outbox worker holds its lease again", extra={"worker": self.worker_id})
            self._lease_ok = True
            self._wake.set()

    # --- database work (runs in threads) -------------------------------------------------

    def _take_identity(self) -> None:
        self.worker_id = self._lease.take()

    def _still_holding(self) -> bool:
        return self._lease.holding()

    def _retake_identity(self) -> bool:
        return self._lease.retake()

    def _drop_identity(self) -> None:
        self._lease.release()

    def _claim(self, limit: int) -> list[Claimed]:
        with self._one.begin() as conn:  # one statement: on PostgreSQL, autocommit
            rows = [Claimed(*r) for r in conn.execute(
                self._claim_stmt, {"now": self.clock(), "limit": limit, "worker": self.worker_id})]
        rows.sort(key=lambda r: (r.priority, r.id))  # RETURNING promises no order
        self._warm_posts(rows)
        return rows

    def _warm_posts(self, rows: Sequence[Claimed]) -> None:
        """Prepare the claimed rows' posts in this thread: one hop fewer per post. The rows
        are committed as claimed: nothing here may lose them."""
        if self._warm is None:
            return
        posts = list(dict.fromkeys(r.message_pk for r in rows
                                   if r.message_pk is not None and r.payload is None))
        if not posts:
            return
        try:
            self._warm(posts[:WARM_POSTS])
        except Exception:
            log.exception("preparing claimed posts failed; their copies prepare them",
                          extra={"worker": self.worker_id})

    def _write(self, done: Sequence[Done], released: Sequence[int]) -> list[Undelivered]:
        """Write the outcomes in one transaction; return the rows that will never be
        delivered, as recorded in ``Bounce``."""
        now = self.clock()
        mine = OUTBOX.c.claimed_by == self.worker_id
        sent = [d.id for d in done if d.result.outcome is Outcome.SENT]
        retries: list[dict[str, Any]] = []
        bounces: list[Done] = []
        given_up: list[Done] = []
        for d in done:
            if d.result.outcome is Outcome.BOUNCE:
                bounces.append(d)
            elif d.result.outcome is Outcome.RETRY:
                attempts = d.attempts + 1
                give_up = now - d.queued_at >= self.give_up_after
                if give_up and d.result.code:  # a refused connection says nothing of them
                    given_up.append(d)
                retries.append({
                    "b_id": d.id, "b_attempts": attempts, "b_error": d.result.status[:1000],
                    "b_state": FAILED if give_up else PENDING,
                    "b_next": now + timedelta(seconds=0 if give_up else self.backoff(attempts))})
                log.log(logging.WARNING if give_up else logging.INFO,
                        "delivery %s after attempt %d: %s", "failed" if give_up else "deferred",
                        attempts, d.result.status, extra=_extra(d, attempts))
        for d in bounces:
            log.info("delivery bounced: %s", d.result.status, extra=_extra(d, d.attempts + 1))
        # Lazy on SQLite (no fdatasync of its own): losing it to a power cut re-sends its
        # copies, as a crash before it does; listserv/async_commit.py says why that is all.
        # On PostgreSQL a write-back of one statement (sent rows alone, the common case, or
        # released rows alone) is that statement in autocommit: still one transaction.
        postgres = self.store.is_postgres
        single = postgres and not (retries or bounces) and not (sent and released)
        engine = self._one if single else self.store.lazy_engine
        with engine.begin() as conn:
            for chunk in _chunks(sent, postgres):
                conn.execute(self._sent, {"ids": chunk, "worker": self.worker_id, "now": now})
            if retries:
                conn.execute(_RETRY.where(mine), retries)
            if bounces:
                conn.execute(update(OUTBOX).where(OUTBOX.c.id == bindparam("b_id"), mine)
                             .values(state=BOUNCED, attempts=OUTBOX.c.attempts + 1,
                                     last_error=bindparam("b_error")),
                             [{"b_id": d.id, "b_error": d.result.status[:1000]} for d in bounces])
            lost = bounces + given_up
            ids: list[int] = []
            if lost:
                ids = list(conn.execute(
                    insert(BOUNCE).returning(BOUNCE.c.id, sort_by_parameter_order=True),
                    [{"list_id": d.list_id, "address": d.recipient, "at": now,
                      "status": reply_status(d.result.code, d.result.detail),
                      "diagnostic": d.result.status[:500], "source": "smtp", "counted": 0.0}
                     for d in lost]).scalars())
            for chunk in _chunks(released, postgres):
                conn.execute(self._release, {"ids": chunk, "worker": self.worker_id})
            undelivered = [Undelivered(i, d.list_id, d.recipient, d.sender, d.copy,
                                       reply_status(d.result.code, d.result.detail),
                                       d.result.status[:500])
                           for i, d in zip(ids, lost, strict=True)]
            if undelivered:
                self._score(conn, undelivered, now)
        failed = sum(1 for r in retries if r["b_state"] == FAILED)
        self.counts.update({"sent": len(sent), "bounced": len(bounces),
                            "retried": len(retries) - failed, "failed": failed})
        return undelivered

    def _score(self, conn: Connection, undelivered: list[Undelivered], now: datetime) -> None:
        """``on_undelivered`` in the write-back's transaction, in a SAVEPOINT of it."""
        if self.on_undelivered is None:
            return
        with Session(bind=conn, join_transaction_mode="create_savepoint",
                     expire_on_commit=False) as session:
            try:
                self.on_undelivered(session, undelivered, now)
                session.commit()  # releases the savepoint; the write-back commits it all
            except Exception:
                session.rollback()
                log.exception("scoring %d undelivered rows failed", len(undelivered),
                              extra={"worker": self.worker_id})

    def _recover_at_start(self) -> int:
        """Make rows that were in flight when their worker died due now; return how many.
        Rows waiting out a back-off keep their time: a restart must not burn their retries."""
        return self._recover_dead()

    def _recover_dead(self) -> int:
        count = recover_dead(self.store, self.worker_id, self.clock())
        if count:
            log.info("outbox recovered %d rows from dead workers", count,
                     extra={"worker": self.worker_id, "rows": count})
        return count

    def _has_due_work(self) -> bool:
        now = self.clock()
        with self.store.engine.connect() as conn:
            return bool(conn.execute(select(exists().where(or_(
                in_state(OutboxState.SENDING),
                in_state(OutboxState.PENDING) & (OUTBOX.c.next_attempt_at <= now))))).scalar())


_RETRY = (update(OUTBOX).where(OUTBOX.c.id == bindparam("b_id"))
          .values(state=bindparam("b_state"), attempts=bindparam("b_attempts"),
                  next_attempt_at=bindparam("b_next", type_=OUTBOX.c.next_attempt_at.type),
                  last_error=bindparam("b_error"), claimed_by=None))


def _chunks(ids: Sequence[int], postgres: bool) -> list[list[int]]:
    """The ids in lists for ``_id_in``: on PostgreSQL one (an array is one parameter)."""
    size = max(len(ids), 1) if postgres else CHUNK
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def _id_in(postgres: bool) -> ColumnElement[bool]:
    """``outbox.id`` among the ``ids`` parameter. On PostgreSQL ``= ANY(array)``: one
    parameter and one statement text however many ids (an expanded ``IN`` is rendered anew
    for each call, and is a new statement to the server for every length)."""
    if postgres:
        return among_ints(OUTBOX.c.id, "ids")
    return OUTBOX.c.id.in_(bindparam("ids", expanding=True))


def _claim_statement(postgres: bool) -> Update:
    """The claim (parameters ``now``, ``limit``, ``worker``), built once rather than per claim.
    Planned each time on PostgreSQL: a plan kept from a small outbox scanned the whole table."""
    due = (select(OUTBOX.c.id)
           .where(in_state(OutboxState.PENDING),
                  OUTBOX.c.next_attempt_at <= bindparam("now", type_=OUTBOX.c.next_attempt_at.type))
           # Notices first, then oldest due, straight off the partial index ix_outbox_due
           # (priority, next_attempt_at) WHERE state = 'pending': no sort of every due row
           # per claim. Ties (a post's rows share one timestamp) come in index order.
           .order_by(OUTBOX.c.priority, OUTBOX.c.next_attempt_at)
           .limit(bindparam("limit", type_=Integer)))
    if postgres:
        # ANY(ARRAY(…)): the due ids are taken first and their rows found by primary key. With
        # IN (…) the server joined them to a scan of the whole table (sent rows are kept for
        # keep_sent): a claim's time grew with the table.
        where = OUTBOX.c.id == any_(func.array(due.with_for_update(skip_locked=True)
                                                .scalar_subquery()))
    else:
        where = OUTBOX.c.id.in_(due)
    return (update(OUTBOX).where(where)
            .values(state=SENDING, claimed_by=bindparam("worker", type_=Integer))
            .returning(OUTBOX.c.id, OUTBOX.c.list_id, OUTBOX.c.message_pk, OUTBOX.c.digest_id,
                       OUTBOX.c.payload, OUTBOX.c.recipient, OUTBOX.c.sender, OUTBOX.c.attempts,
                       func.coalesce(OUTBOX.c.requeued_at, OUTBOX.c.created_at),
                       OUTBOX.c.priority)
            .execution_options(**{PLAN_EACH_TIME: True}))  # the table's size keeps changing


def _sent_and_release(postgres: bool) -> tuple[Update, Update]:
    """The write-back's statements for sent rows and for rows given back unsent (parameters
    ``ids``, ``worker`` and, for sent rows, ``now``)."""
    mine = OUTBOX.c.claimed_by == bindparam("worker")
    sent = (update(OUTBOX).where(_id_in(postgres), mine)
            .values(state=SENT, sent_at=bindparam("now", type_=OUTBOX.c.sent_at.type),
                    attempts=OUTBOX.c.attempts + 1))
    release = (update(OUTBOX).where(_id_in(postgres), mine, OUTBOX.c.state == SENDING)
               .values(state=PENDING, claimed_by=None))
    return (sent.execution_options(**{PLAN_EACH_TIME: True}),
            release.execution_options(**{PLAN_EACH_TIME: True}))


def _extra(row: Claimed | Done, attempts: int | None = None) -> dict[str, Any]:
    return {"list_id": row.list_id, "outbox_id": row.id, "recipient": row.recipient,
            "attempts": row.attempts if attempts is None else attempts}


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
