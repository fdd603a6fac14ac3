"""An outbox worker's lease: its id, held as a PostgreSQL advisory lock on a connection of its
own, and the recovery of rows whose worker no longer holds its lease.

Invariants:
- A worker id is unique among live workers: it is taken with ``pg_try_advisory_lock`` in the
  two-key space under ``LOCK_CLASS``, so ids cannot collide with other locks.
- The lock lives as long as its connection. ``holding`` checks that connection (as the
  scheduler checks its leader lock); ``retake`` takes the same id again on a new connection.
- ``recover_dead`` resets another worker's ``sending`` rows only while it holds that worker's
  lock, i.e. only when that worker's session is gone; a live worker's rows are never stolen.
- On SQLite (one process) there is nothing to lock: ids are random and always held.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime

from sqlalchemy import Connection, Table, or_, select, text, update

from listserv.models import Outbox, OutboxState
from listserv.outbox_admin import in_state
from listserv.store import Store

OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]
# The first key of the two-key advisory locks on PostgreSQL: the (int, int) lock space is
# separate from the single-bigint one, so worker ids cannot collide with other locks.
LOCK_CLASS = 0x4F555442  # "OUTB"
_TRY = text("SELECT pg_try_advisory_lock(:c, :w)")
_UNLOCK = text("SELECT pg_advisory_unlock(:c, :w)")


class Lease:
    """One worker's id and, on PostgreSQL, the connection that holds its lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.worker_id = 0
        self._conn: Connection | None = None

    def take(self) -> int:
        """A new id, unique among live workers; returns it."""
        if not self.store.is_postgres:
            self.worker_id = secrets.randbelow(2**31 - 2) + 1
            return self.worker_id
        conn = self._connect()
        while True:  # claimed_by is a 32-bit column: ids are 31-bit and must be unique live
            wid = secrets.randbelow(2**31 - 2) + 1
            if conn.execute(_TRY, {"c": LOCK_CLASS, "w": wid}).scalar():
                break
        self.worker_id, self._conn = wid, conn
        return wid

    def holding(self) -> bool:
        if not self.store.is_postgres:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def retake(self) -> bool:
        """Take the same id's lock on a new connection. Rows another worker reset meanwhile
        are no longer ``claimed_by`` this id, so the worker's write-backs leave them alone."""
        self._close()
        conn = self._connect()
        try:
            got = bool(conn.execute(_TRY, {"c": LOCK_CLASS, "w": self.worker_id}).scalar())
        except Exception:
            conn.close()
            raise
        if not got:  # a recovering worker holds it for a moment: try at the next check
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # a lost connection has no lock to give up
                conn.execute(_UNLOCK, {"c": LOCK_CLASS, "w": self.worker_id})
        self._close()

    def _connect(self) -> Connection:
        return self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()  # never back into the pool: it may be broken
            with contextlib.suppress(Exception):
                conn.close()


def recover_dead(store: Store, own_id: int, now: datetime) -> int:
    """Make ``sending`` rows of workers that hold no lease due now; return how many."""
    if not store.is_postgres:  # one process: every other worker's row is a dead one's
        with store.engine.begin() as conn:
            return int(conn.execute(
                update(OUTBOX).where(in_state(OutboxState.SENDING),
                                     or_(OUTBOX.c.claimed_by.is_(None),
                                         OUTBOX.c.claimed_by != own_id))
                .values(state=OutboxState.PENDING.value, claimed_by=None,
                        next_attempt_at=now)).rowcount or 0)
    count = 0
    reset = (update(OUTBOX).where(in_state(OutboxState.SENDING))
             .values(state=OutboxState.PENDING.value, claimed_by=None, next_attempt_at=now))
    with store.engine.connect() as c:
        conn = c.execution_options(isolation_level="AUTOCOMMIT")
        owners = conn.execute(select(OUTBOX.c.claimed_by).distinct().where(
            in_state(OutboxState.SENDING),
            or_(OUTBOX.c.claimed_by.is_(None), OUTBOX.c.claimed_by != own_id),
        )).scalars().all()
        for owner in owners:
            if owner is None:
                count += conn.execute(reset.where(OUTBOX.c.claimed_by.is_(None))).rowcount
                continue
            lock = {"c": LOCK_CLASS, "w": owner}
            if not conn.execute(_TRY, lock).scalar():
                continue  # that worker is alive and still owns its rows
            try:
                count += conn.execute(reset.where(OUTBOX.c.claimed_by == owner)).rowcount
            finally:
                conn.execute(_UNLOCK, lock)
    return count
