"""Write-behind: on PostgreSQL, writes whose results nobody reads go to the server together.

Handling a post ends with writes that return nothing the code reads (the thread's new counts,
the search text, the members' copies, the audit row, the inbound row's delete). Sent one by
one, each costs a round trip, and the one writer thread that handles posts spends most of its
time waiting on the server (bench/README.md, "Round trips of the handling writer on
PostgreSQL"). Inside a ``scope``, ``defer``
queues such a statement; the queue goes out (psycopg's pipeline mode) in the same round trip as
the next statement that runs on the connection, or on its own at the end of the scope.

Invariants:
- Statements run in the order they were deferred, and before any later statement on the same
  connection (a read, an ORM flush, a SAVEPOINT, a RELEASE, the COMMIT): nothing reads around a
  deferred write.
- A queue never crosses a savepoint: it is sent before each SAVEPOINT, so a ROLLBACK TO
  SAVEPOINT (which only ever concerns what came after the innermost open savepoint) drops
  whatever is queued, as the server would have undone it; a top-level ROLLBACK drops it too.
- A deferred statement that fails raises at the end of the scope (or at the next statement), as
  the driver's error (not SQLAlchemy's), inside the scope: the caller's savepoint around the
  scope rolls it back. So defer only statements whose failure is a bug, never one the caller
  would catch and recover from.
- A RELEASE in a scope rides with the next statement on the connection (the next message's
  first read, or the COMMIT's sync), whether or not that is in a scope: nothing reads its
  result. Should it fail (the connection lost: a RELEASE after statements that succeeded has
  nothing else to fail on), that next statement fails, the transaction with it, and the group
  committer runs the group's units again one by one.
- Outside a scope, and on SQLite (no round trips to save), ``defer`` runs the statement at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import (
    ReleaseSavepointClause,
    RollbackToSavepointClause,
    SavepointClause,
)
from sqlmodel import Session

_QUEUE = "commonroom_write_behind"  # Connection.info: the deferred (statement, parameters)

Deferred = list[tuple[Executable, Any]]  # parameters: a mapping, or a list (executemany)


_PIPELINE = "commonroom_pipeline"  # Connection.info: the pipeline the next statement closes
_KEEP_OPEN = "commonroom_keep_open"  # Connection.info: the statement just sent leaves it open
_FILLING = "commonroom_filling"  # Connection.info: the queue is going into the pipeline
_RIDING = "commonroom_riding"  # Connection.info: the open pipeline holds a RELEASE, unread


def install(engine: Engine) -> None:
    """Send or drop a connection's queue at the points the invariants name (PostgreSQL's
    engine; ``Store`` calls this)."""
    event.listen(engine, "before_execute", _before_execute)
    event.listen(engine, "after_cursor_execute", _after_cursor_execute)
    event.listen(engine, "handle_error", _on_error)
    event.listen(engine, "commit", _before_commit)
    event.listen(engine, "rollback", _drop)


@contextmanager
def scope(session: Session) -> Iterator[None]:
    """Within the block, ``defer``red statements wait to go out together, and a SAVEPOINT rides
    with the statement after it. Use it inside a savepoint or transaction that is rolled back
    when the block raises: what is still queued then is dropped. What a scope queued is sent
    at its end, also when it is inside another one (so before the RELEASE of a savepoint
    around it)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        yield
        return
    outer = conn.info.get(_QUEUE) is not None
    if not outer:
        conn.info[_QUEUE] = []
    try:
        yield
        _send(conn)  # here, so an error raises inside the caller's savepoint
    finally:
        if not outer:
            conn.info.pop(_QUEUE, None)


def defer(session: Session, statement: Executable,
          params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Run ``statement`` (a write whose result is not read) now, or, inside a ``scope``, with
    the next round trip. Pending ORM changes are flushed first, as ``session.execute`` would."""
    conn = session.connection()
    queue: Deferred | None = conn.info.get(_QUEUE)
    if queue is None:
        session.execute(statement, params)
        return
    if session.autoflush:
        session.flush()
    queue.append((statement, params))


def _send(conn: Connection) -> None:
    queue: Deferred | None = conn.info.get(_QUEUE)
    if not queue and conn.info.get(_RIDING):
        return  # a RELEASE waits for the next statement, also past the scope's end
    _close_pipeline(conn)
    if not queue:
        return
    items = list(queue)
    queue.clear()  # before executing: the statements below pass through _before_execute
    if len(items) == 1:
        conn.execute(*items[0])
        return
    with conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
        for statement, params in items:
            conn.execute(statement, params)


def _before_execute(conn: Connection, clauseelement: Any, *_args: Any) -> None:
    queue: Deferred | None = conn.info.get(_QUEUE)
    if isinstance(clauseelement, RollbackToSavepointClause):
        if queue:
            queue.clear()
        return  # an open pipeline (a SAVEPOINT riding along) closes with this statement
    if isinstance(clauseelement, ReleaseSavepointClause):
        # A RELEASE that fails is not followed by a ROLLBACK TO (SQLAlchemy): what it would
        # carry goes on its own, so a failure raises while the savepoint can still be undone.
        _close_pipeline(conn)
        _send(conn)
        if queue is not None:  # in a scope: the RELEASE itself rides with the next statement
            _open_pipeline(conn)
            conn.info[_KEEP_OPEN] = conn.info[_RIDING] = True
        return
    conn.info.pop(_RIDING, None)  # the pipeline (if open) now holds a statement to read
    if queue:
        # The queue, then this statement, in one round trip: the pipeline opened here is
        # closed (results read) once the driver has this statement (_after_cursor_execute).
        items = list(queue)
        queue.clear()
        pipeline = _open_pipeline(conn)
        conn.info[_FILLING] = True  # their own after_cursor_execute leaves the pipeline open
        try:
            for statement, params in items:
                conn.execute(statement, params)
        except BaseException as exc:
            conn.info.pop(_PIPELINE, None)
            pipeline.__exit__(type(exc), exc, exc.__traceback__)
            raise
        finally:
            conn.info.pop(_FILLING, None)
    if isinstance(clauseelement, SavepointClause) and conn.info.get(_QUEUE) is not None:
        # Nothing reads a SAVEPOINT's result: in a scope it rides with the next statement.
        _open_pipeline(conn)
        conn.info[_KEEP_OPEN] = True


def _after_cursor_execute(conn: Connection, *_args: Any) -> None:
    if conn.info.get(_FILLING):
        return
    if not conn.info.pop(_KEEP_OPEN, False):
        _close_pipeline(conn)  # a deferred statement's error raises here, as this statement's


def _on_error(context: Any) -> None:
    if context.connection is not None:
        context.connection.info.pop(_KEEP_OPEN, None)
        pipeline = context.connection.info.pop(_PIPELINE, None)
        if pipeline is not None:
            with suppress(Exception):  # the statement's own error is the one to raise
                pipeline.__exit__(None, None, None)


def _open_pipeline(conn: Connection) -> Any:
    pipeline = conn.info.get(_PIPELINE)
    if pipeline is None:  # else one is open: this joins it
        pipeline = conn.connection.dbapi_connection.pipeline()  # type: ignore[union-attr]
        pipeline.__enter__()
        conn.info[_PIPELINE] = pipeline
    return pipeline


def _close_pipeline(conn: Connection) -> None:
    conn.info.pop(_KEEP_OPEN, None)
    conn.info.pop(_RIDING, None)
    pipeline = conn.info.pop(_PIPELINE, None)
    if pipeline is not None:
        pipeline.__exit__(None, None, None)


def _before_commit(conn: Connection) -> None:
    _close_pipeline(conn)
    _send(conn)


def _drop(conn: Connection) -> None:
    queue: Deferred | None = conn.info.get(_QUEUE)
    if queue:
        queue.clear()
    with suppress(Exception):
        _close_pipeline(conn)
