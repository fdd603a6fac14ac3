"""Ids taken ahead from the tables' own sequences (PostgreSQL), so a post's INSERTs need no
round trip to learn them.

The handling writer inserted each new thread and each post with ``RETURNING id`` and waited for
the answer (two round trips a new thread's post, one a reply's) only because the rows written
after them (the thread's refs, the post's row, its copies) name that id. With the id known
before the INSERT, the INSERT is a write whose result nobody reads: ``write_behind.defer``
sends it with the post's other writes (issue 12, bench/README.md "i12-pg-ids-ahead").

Invariants:
- An id ``take`` gives comes from the table's own sequence (``nextval``), the one its default
  draws from: it never collides with an id given at insert time (the ORM's inserts, another
  process, another engine), and each is given out once (one lock per engine's pool of
  connections and process; a forked child never uses its parent's ids).
- Ids are drawn ``BLOCK`` at a time, both tables' in one statement, which runs through
  ``write_behind.rows`` (so what is deferred goes first, in the same round trip). Drawing
  never holds the lock while it waits on the server: a writer whose deferred writes wait for
  another writer's row locks must not stop that other from taking an id.
- Sequences are not transactional: an id taken by a unit that is rolled back (or held by a
  process that stops) is never used, a gap, as ``nextval``'s own. Within a process ids follow
  the order they are taken in; across processes (each holding its block) only up to a block,
  so nothing may order posts by id to mean "by arrival" (order by ``received_at`` or
  ``accepted_at`` first, the id only breaking ties).
- On SQLite ``take`` gives None: the caller inserts with RETURNING as before (no round trips to
  save, and the rowid stays the table's to give).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from sqlalchemy import Insert, Table, text
from sqlalchemy import insert as core_insert
from sqlmodel import Session

from listserv import write_behind

# A block is about one group's worth of posts (the pipeline's groups hold at most
# ``group_commit.MAX_BACKGROUND`` = 32): one statement a group in the steady state, and at most
# 32 ids out of arrival order between ``serve`` processes, or lost when one stops.
BLOCK = 32

TABLES = ("message", "thread")  # the tables whose ids are taken ahead

# Both tables' ids in one statement; CASE draws from a sequence only for the rows asked for.
_DRAW = text(
    "SELECT CASE WHEN g <= :message THEN nextval(pg_get_serial_sequence('message', 'id')) END, "
    "CASE WHEN g <= :thread THEN nextval(pg_get_serial_sequence('thread', 'id')) END "
    "FROM generate_series(1, greatest(:message, :thread)) AS g")


class _Ids:
    """One process's ids in hand for one engine (its pool of connections)."""

    __slots__ = ("free", "lock", "pid")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.free: dict[str, list[int]] = {t: [] for t in TABLES}  # each popped from its end


_POOLS: weakref.WeakKeyDictionary[Any, _Ids] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def _ids_for(bind: Any) -> _Ids:
    """The ids in hand for ``bind`` (an Engine, or a Connection of one) in this process."""
    key = bind.engine.pool  # an Engine and its execution_options() copies share it
    with _POOLS_LOCK:
        ids = _POOLS.get(key)
        if ids is None or ids.pid != os.getpid():
            ids = _POOLS[key] = _Ids()
        return ids


def take(session: Session, table: str) -> int | None:
    """An id for a new row of ``table`` (one of ``TABLES``), drawn ahead from its sequence;
    None on SQLite (insert with RETURNING)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return None
    ids = _ids_for(bind)
    while True:
        with ids.lock:
            free = ids.free[table]
            if free:
                return free.pop()
            wanted = {t: BLOCK - len(ids.free[t]) for t in TABLES}
        drawn = draw(session, wanted)  # not under the lock (see the invariants)
        with ids.lock:
            for t in TABLES:
                # Popped from the end: the lowest first. Another writer may have drawn too.
                ids.free[t] = sorted(ids.free[t] + drawn[t], reverse=True)


_INSERTS: dict[str, tuple[Insert, Insert]] = {}  # built once a table: write_behind compiles once


def insert(session: Session, table: Table, values: dict[str, Any]) -> int:
    """Insert a row of ``table`` (one of ``TABLES``) and give its id: on PostgreSQL taken
    ahead, the INSERT deferred (``write_behind.defer``: it goes with the post's other writes);
    on SQLite run at once with RETURNING."""
    statements = _INSERTS.get(table.name)
    if statements is None:
        statements = _INSERTS[table.name] = (core_insert(table).returning(table.c.id),
                                             core_insert(table))
    with_returning, with_id = statements
    pk = take(session, table.name)
    if pk is None:
        found: int = write_behind.returning(session, with_returning, values)
        return found
    write_behind.defer(session, with_id, {"id": pk, **values})
    return pk


def draw(session: Session, wanted: dict[str, int]) -> dict[str, list[int]]:
    """``wanted[table]`` fresh ids of each table from its sequence, in one statement."""
    with session.no_autoflush:  # it reads only sequences: what is pending waits, as it would
        found = write_behind.rows(session, _DRAW, {t: wanted.get(t, 0) for t in TABLES})
    return {t: sorted(int(r[n]) for r in found if r[n] is not None)
            for n, t in enumerate(TABLES)}
