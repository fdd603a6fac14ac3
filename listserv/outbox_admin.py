"""What people and the worker's upkeep ask of the outbox besides delivering: list rows, re-queue
the failed ones, delete old sent ones. The delivery loop itself is ``outbox.OutboxWorker``.

Invariants:
- Reading never takes the write lock (``Store.read_session``); re-queueing and pruning are one
  short transaction per call (pruning: per chunk, so the SMTP door never waits long on SQLite).
- A re-queued row gets a new lifetime (``requeued_at``): ``[delivery] give_up_after`` counts
  from it, so a row retried after a long outage is not failed again at its first 4xx.
- Only ``sent`` rows are pruned; ``failed`` and ``bounced`` rows stay until someone acts.
- State tests are written as SQL literals (``state = 'pending'``), not bound parameters, so both
  backends can use the partial indexes, whose WHERE is that same literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Table, delete, literal_column, select, update

from listserv.models import MailingList, Outbox, OutboxState
from listserv.store import Store

OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]
LISTS: Table = MailingList.__table__  # type: ignore[attr-defined]
PRUNE_CHUNK = 5000


def in_state(state: OutboxState) -> ColumnElement[bool]:
    """``outbox.state = 'STATE'`` as a literal: what the partial indexes' WHERE says."""
    return OUTBOX.c.state == literal_column(f"'{state.value}'")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    list_name: str  # "" for site mail
    recipient: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str


def entries(store: Store, *, state: OutboxState | None = None, list_id: int | None = None,
            limit: int = 50) -> list[OutboxEntry]:
    """The newest ``limit`` rows (optionally of one state and list), newest first."""
    query = (select(OUTBOX.c.id, LISTS.c.name, OUTBOX.c.recipient, OUTBOX.c.state,
                    OUTBOX.c.attempts, OUTBOX.c.created_at, OUTBOX.c.next_attempt_at,
                    OUTBOX.c.last_error)
             .select_from(OUTBOX.outerjoin(LISTS, OUTBOX.c.list_id == LISTS.c.id))
             .order_by(OUTBOX.c.id.desc()).limit(limit))
    if state is not None:
        query = query.where(in_state(state))
    if list_id is not None:
        query = query.where(OUTBOX.c.list_id == list_id)
    with store.read_session() as s:
        return [OutboxEntry(r.id, r.name or "", r.recipient, r.state, r.attempts, r.created_at,
                            r.next_attempt_at, r.last_error) for r in s.execute(query)]


def retry_failed(store: Store, now: datetime, *, list_id: int | None = None) -> int:
    """Make every ``failed`` row (of one list) due now with a new lifetime; how many."""
    stmt = (update(OUTBOX).where(in_state(OutboxState.FAILED))
            .values(state=OutboxState.PENDING.value, next_attempt_at=now, requeued_at=now,
                    claimed_by=None))
    if list_id is not None:
        stmt = stmt.where(OUTBOX.c.list_id == list_id)
    with store.engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)


def prune_sent(store: Store, before: datetime) -> int:
    """Delete ``sent`` rows sent before ``before``, a chunk per transaction; how many."""
    total = 0
    while True:
        chunk = (select(OUTBOX.c.id)
                 .where(in_state(OutboxState.SENT), OUTBOX.c.sent_at < before)
                 .limit(PRUNE_CHUNK).scalar_subquery())
        with store.engine.begin() as conn:
            deleted = int(conn.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(chunk))).rowcount or 0)
        total += deleted
        if deleted < PRUNE_CHUNK:
            return total
