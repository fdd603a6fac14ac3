"""PostgreSQL's search index filled behind the posts: the ``tsv`` of rows written without it.

A post's transaction writes its ``search_text`` row with ``tsv`` NULL (migration 0024): the
tsvector and its GIN entries cost ~1 ms of server CPU a post, on the one handling writer's
critical path (issue 12). ``index_batch`` fills them later, a batch a transaction, and search
finds a row meanwhile through ``search_tsv`` of its text (``listserv.search``). ``serve`` runs an
``Indexer`` on PostgreSQL, which indexes only while its inbound pipeline is idle (``due``);
``commonroom db reindex-search`` indexes what is left before its REINDEX (``search_index``).

Invariants:
- A ``tsv`` is NULL or ``search_tsv`` of its row's text (the migration's trigger sets it back to
  NULL when the text changes); only NULL ones are written here, so indexing is idempotent.
- Several indexers (processes) share the rows: a batch locks its rows ``FOR UPDATE SKIP
  LOCKED``, so two never wait for each other nor index a row twice.
- A burst's handling does not share the cores with indexing: an ``Indexer`` starts only after
  the pipeline has been idle ``QUIET`` seconds and stops between batches as soon as it is not;
  only a pipeline busy for longer than ``SWEEP`` gets one batch each ``SWEEP`` meanwhile.
- SQLite has nothing to index here (FTS5's triggers index in the post's transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, text

from listserv.store import Store

log = logging.getLogger("commonroom.search_behind")

BATCH = 200  # rows a transaction: ~0.2 s of server CPU, the longest a new burst shares it
QUIET = 1.0  # seconds the pipeline is idle before indexing begins
SWEEP = 60.0  # seconds between looks when this process handled nothing (imports, other serves)
TICK = 1.0  # seconds between the Indexer's looks at the pipeline

_INDEX = text("""
UPDATE search_text SET tsv = search_tsv(subject, author, body)
WHERE message_pk IN (SELECT message_pk FROM search_text WHERE tsv IS NULL
                     ORDER BY message_pk LIMIT :n FOR UPDATE SKIP LOCKED)""")


def index_batch(conn: Connection, n: int = BATCH) -> int:
    """Index up to ``n`` rows not yet indexed, oldest first, in the caller's transaction; how
    many."""
    return int(conn.execute(_INDEX, {"n": n}).rowcount)


@dataclass(frozen=True)
class Done:
    rows: int
    batches: int
    seconds: float
    more: bool  # stopped early (``keep_going``): rows may be left


def index_pending(store: Store, *, batch: int = BATCH,
                  keep_going: Callable[[], bool] = lambda: True) -> Done:
    """Index every row not yet indexed, a committed transaction a batch, while ``keep_going``
    (asked before each batch but the first). Logs how many rows and how long."""
    start, rows, batches, more = time.monotonic(), 0, 0, False
    if store.is_postgres:
        while True:
            with store.engine.begin() as conn:
                n = index_batch(conn, batch)
            rows, batches = rows + n, batches + 1
            if n < batch:
                break
            if not keep_going():
                more = True
                break
    done = Done(rows, batches, time.monotonic() - start, more)
    if done.rows:
        log.info("search: indexed %d posts in %d batches, %.2f s%s", done.rows, done.batches,
                 done.seconds, " (paused: the pipeline is busy)" if more else "",
                 extra={"indexed": done.rows, "batches": done.batches,
                        "seconds": round(done.seconds, 3), "more": more})
    return done


def due(*, idle_for: float | None, handled: int, seen: int, more: bool, since_look: float,
        quiet: float = QUIET, sweep: float = SWEEP) -> bool:
    """Whether an Indexer indexes now. ``idle_for``: seconds the pipeline has been idle (None:
    busy); ``handled``: posts it has handled, ``seen`` at the last look; ``more``: the last look
    stopped early; ``since_look``: seconds since it. Pure."""
    if idle_for is None or idle_for < quiet:
        # Busy: still a batch a sweep, so a pipeline never quiet for long cannot leave posts
        # unindexed without bound (each costs every search ~1 ms until it is indexed).
        return since_look >= sweep
    return more or handled != seen or since_look >= sweep


class Indexer:
    """``serve``'s indexer (PostgreSQL): looks every ``TICK`` and indexes when ``due``.

    ``idle_since``: when the pipeline last became idle (monotonic; None while busy);
    ``handled``: how many posts it has handled."""

    def __init__(self, store: Store, idle_since: Callable[[], float | None],
                 handled: Callable[[], int], *, quiet: float = QUIET, sweep: float = SWEEP,
                 tick: float = TICK, batch: int = BATCH) -> None:
        self.store, self.idle_since, self.handled = store, idle_since, handled
        self.quiet, self.sweep, self.tick, self.batch = quiet, sweep, tick, batch
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.indexed = 0  # rows indexed by this Indexer (tests)

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="search-indexer")

    async def stop(self) -> None:
        # Not a cancel: a cancelled to_thread call would finish unseen, its connection with it.
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    def _idle_for(self) -> float | None:
        since = self.idle_since()
        return None if since is None else time.monotonic() - since

    def _keep_going(self) -> bool:
        idle = self._idle_for()
        return not self._stopping.is_set() and idle is not None and idle >= self.quiet

    async def _run(self) -> None:
        # Rows left from before (another process, an import) are looked for at the first quiet
        # moment (``more``); a pipeline busy from the start waits a SWEEP for its first batch.
        seen, more, last_look = self.handled(), True, time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.tick)
            if self._stopping.is_set():
                return
            handled = self.handled()
            if not due(idle_for=self._idle_for(), handled=handled, seen=seen, more=more,
                       since_look=time.monotonic() - last_look, quiet=self.quiet,
                       sweep=self.sweep):
                continue
            seen, last_look = handled, time.monotonic()
            try:
                done = await asyncio.to_thread(index_pending, self.store, batch=self.batch,
                                               keep_going=self._keep_going)
            except Exception:
                log.exception("search: indexing failed; trying again later")
                more = False
                continue
            more, self.indexed = done.more, self.indexed + done.rows
