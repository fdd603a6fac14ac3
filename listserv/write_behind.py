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
- While ``riding`` (the group committer's transactions of several units, PostgreSQL), what a
  scope queued goes at its end into the open pipeline without waiting for it, as a RELEASE
  does, and rides with the next statement (the next message's first read, or the COMMIT's
  sync): one round trip fewer a handled post. Its failure then fails that statement and the
  transaction, and the committer runs the group's units again one by one, not riding, where it
  raises inside the scope as above (so a post whose write fails is still shunted alone).
- Whatever rode (a scope's queue, a RELEASE) and failed, or was abandoned unread with a failing
  statement, dooms the transaction: its COMMIT raises instead of being sent. PostgreSQL would
  answer that COMMIT with a silent ROLLBACK, and the units after the failure, and the one
  before it, would seem written.
- While riding, ``read_later`` sends a read into the open pipeline unread, as what rides: its
  rows come back with the next statement's round trip and are taken when asked for
  (``Later.rows``). The caller must look at them before anything that depends on them goes out
  (the inbound row's lock: before the message's writes; a post's thread read: before it is
  placed), and a read sent and never looked at must be harmless (its locks kept to the end of
  the transaction).
- Outside a scope, and on SQLite (no round trips to save), ``defer`` runs the statement at once.
- The post's statements that go through here (deferred in a scope, or run at once by
  ``returning`` and ``rows``) are compiled once and run on the driver's cursor, not through
  SQLAlchemy's execution (~90 µs of Python a statement, issue 12), unless they need what only
  that gives (a Python-side default, escaped names); the same SQL (expanded INs included),
  parameters, bind and result conversions, and the invariants above hold for them too. So do
  SAVEPOINT and RELEASE (the dialect's ``do_savepoint``/``do_release_savepoint``).
- On SQLite there is no queue: in a scope ``defer`` runs its statement on the cursor at once,
  so its error raises at the ``defer``, inside the caller's savepoint. The driver's errors on
  SQLite are wrapped as SQLAlchemy's execution would wrap them (``IntegrityError`` and so on),
  so a caller sees what it saw before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import (
    ClauseElement,
    ReleaseSavepointClause,
    RollbackToSavepointClause,
    SavepointClause,
    TextClause,
)
from sqlalchemy.sql.selectable import CompoundSelect, Select
from sqlalchemy.sql.util import find_tables
from sqlmodel import Session

_QUEUE = "commonroom_write_behind"  # Connection.info: the deferred (statement, parameters)

Deferred = list[tuple[Executable, Any]]  # parameters: a mapping, or a list (executemany)


_PIPELINE = "commonroom_pipeline"  # Connection.info: the pipeline the next statement closes
_KEEP_OPEN = "commonroom_keep_open"  # Connection.info: the statement just sent leaves it open
_FILLING = "commonroom_filling"  # Connection.info: the queue is going into the pipeline
_RIDING = "commonroom_riding"  # Connection.info: the open pipeline holds a RELEASE, unread
_AT_ONCE = "commonroom_at_once"  # Connection.info: in a scope on SQLite (defer on the cursor)
_RIDE = "commonroom_ride"  # Connection.info: a scope's queue rides with the next statement
_UNREAD = "commonroom_unread"  # Connection.info: the open pipeline holds statements that rode
_DOOMED = "commonroom_doomed"  # Connection.info: what rode failed: the COMMIT must not happen


def install(engine: Engine) -> None:
    """Send or drop a connection's queue at the points the invariants name (PostgreSQL's
    engine; ``Store`` calls this)."""
    event.listen(engine, "before_execute", _before_execute)
    event.listen(engine, "after_cursor_execute", _after_cursor_execute)
    event.listen(engine, "handle_error", _on_error)
    event.listen(engine, "commit", _before_commit)
    event.listen(engine, "rollback", _drop)
    install_savepoints(engine)


def install_savepoints(engine: Engine) -> None:
    """SAVEPOINT and RELEASE (two a handled message) on the driver's cursor (``_plain``), on
    both stores: SQLAlchemy's way builds, caches and compiles a clause each time. ROLLBACK TO
    (rare) not. The connection's ``savepoint``/``release_savepoint`` events still fire
    (SQLAlchemy's ``Connection`` dispatches them before calling these)."""
    dialect: Any = engine.dialect
    dialect.do_savepoint = _savepoint
    dialect.do_release_savepoint = _release


def _plain_sqlite(conn: Connection, sql: str) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, (), None, False)
        execute(cursor, sql, (), False)
    except Exception as exc:
        conn._handle_dbapi_exception(exc, sql, (), cursor, None)  # as SQLAlchemy's own
    finally:
        cursor.close()


def _savepoint(conn: Connection, name: str) -> None:
    clause = SavepointClause(name)  # type: ignore[no-untyped-call]
    _plain(conn, clause, f"SAVEPOINT {_savepoint_name(conn, clause)}")


def _release(conn: Connection, name: str) -> None:
    clause = ReleaseSavepointClause(name)  # type: ignore[no-untyped-call]
    _plain(conn, clause, f"RELEASE SAVEPOINT {_savepoint_name(conn, clause)}")


def _savepoint_name(conn: Connection, clause: Any) -> str:
    preparer: Any = conn.dialect.identifier_preparer
    return str(preparer.format_savepoint(clause))


def _plain(conn: Connection, clause: Any, sql: str) -> None:
    """Run a statement without parameters on the driver's cursor as SQLAlchemy would run
    ``clause``, with this module's handling of it (``_before_execute``)."""
    if conn.dialect.name == "sqlite":  # no pipeline there
        _plain_sqlite(conn, sql)
        return
    _before_execute(conn, clause)
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        conn.dispatch.before_cursor_execute(conn, cursor, sql, {}, None, False)
        execute(cursor, sql, None, False)
        _after_cursor_execute(conn)
    except BaseException:
        _abandon_pipeline(conn)
        raise


_CONNECTION = "commonroom_connection"  # Session.info: (its current transaction, connection)


def _connection(session: Session) -> Connection:
    """``session.connection()``, kept for the session's current (innermost) transaction while
    that one is current and active: its connection cannot change meanwhile, and the ORM's
    bookkeeping to find it again cost ~15 µs a statement (issue 12). A savepoint begun since is
    a new transaction: ``session.connection()`` then emits its SAVEPOINT as before."""
    current = session._transaction
    kept = session.info.get(_CONNECTION)
    if kept is not None and kept[0] is current and current is not None and current.is_active:
        connection: Connection = kept[1]
        return connection
    connection = session.connection()
    session.info[_CONNECTION] = (session._transaction, connection)
    return connection


@contextmanager
def scope(session: Session) -> Iterator[None]:
    """Within the block, ``defer``red statements wait to go out together, and a SAVEPOINT rides
    with the statement after it. Use it inside a savepoint or transaction that is rolled back
    when the block raises: what is still queued then is dropped. What a scope queued is sent
    at its end, also when it is inside another one (so before the RELEASE of a savepoint
    around it)."""
    conn = _connection(session)
    if conn.dialect.name != "postgresql":
        # Nothing to send together (no round trips); ``defer`` runs on the cursor at once.
        outer = bool(conn.info.get(_AT_ONCE))
        conn.info[_AT_ONCE] = True
        try:
            yield
        finally:
            if not outer:
                conn.info.pop(_AT_ONCE, None)
        return
    outer = conn.info.get(_QUEUE) is not None
    if not outer:
        conn.info[_QUEUE] = []
    try:
        yield
        if conn.info.get(_RIDE):
            _ride(conn)  # an error raises with the next statement: the group runs again
        else:
            _send(conn)  # here, so an error raises inside the caller's savepoint
    finally:
        if not outer:
            conn.info.pop(_QUEUE, None)


@contextmanager
def riding(conn: Connection) -> Iterator[None]:
    """Within the block, a scope's queue rides with the next statement instead of being sent
    and read at the scope's end (see the invariants): for a transaction whose failure is
    answered by running its units again one by one, not riding (the group committer's)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    info = conn.info  # the connection may be closed by the end of the block (a commit)
    info[_RIDE] = True
    try:
        yield
    finally:
        info.pop(_RIDE, None)
        info.pop(_DOOMED, None)


def defer(session: Session, statement: Executable,
          params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Run ``statement`` (a write whose result is not read) now, or, inside a ``scope``, with
    the next round trip. Pending ORM changes are flushed first, as ``session.execute`` would."""
    conn = _connection(session)
    queue: Deferred | None = conn.info.get(_QUEUE)
    if queue is not None:
        if session.autoflush:
            session.flush()
        queue.append((statement, params))
        return
    raw = _raw(conn, statement, params) if conn.info.get(_AT_ONCE) else None
    if raw is None:
        session.execute(statement, params)
        return
    if session.autoflush:  # as in a scope on PostgreSQL
        session.flush()
    raw.run(conn, params)


def returning(session: Session, statement: Executable, params: Mapping[str, Any]) -> Any:
    """Run ``statement`` (a write with RETURNING of one column, one row) now and return that
    value, after what is deferred (in the same round trip, on PostgreSQL)."""
    conn = _connection(session)
    raw = _raw(conn, statement, params)
    if raw is None:
        return session.execute(statement, params).scalar_one()
    found = raw.fetch(_now(conn, raw, statement, params))
    if len(found) != 1:
        raise LookupError(f"{statement} returned {len(found)} rows, not one")
    return found[0][0]


def rows(session: Session, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
    """``session.execute(statement, params).all()``, on the driver's cursor on PostgreSQL when
    its columns need no conversion: for a read each post makes. Pending ORM changes are
    flushed first (as the ORM would for a statement on its entities)."""
    conn = _connection(session)
    raw = _raw(conn, statement, params)
    if raw is None:
        return session.execute(statement, params).all()
    if session.autoflush:
        session.flush()
    return raw.fetch(_now(conn, raw, statement, params))


class Later:
    """A read whose rows are taken when asked for (``read_later``)."""

    __slots__ = ("_cursor", "_raw", "_rows")

    def __init__(self, raw: _Raw | None, cursor: Any, found: Sequence[Any] | None) -> None:
        self._raw, self._cursor, self._rows = raw, cursor, found

    def rows(self) -> Sequence[Any]:
        """The statement's rows (read from its cursor the first time: by then the round trip
        it rode with has usually brought them)."""
        if self._rows is None:
            assert self._raw is not None
            self._rows = self._raw.fetch(self._cursor)
            self._cursor = None
        return self._rows


def rides(session: Session) -> bool:
    """Whether ``session``'s statements ride (``riding``): a read sent early costs no round trip."""
    return bool(_connection(session).info.get(_RIDE))


def read_later(session: Session, statement: Executable, params: Mapping[str, Any]) -> Later:
    """``rows``, but while ``riding`` (PostgreSQL, the group committer's transactions) the
    statement goes into the open pipeline unread and rides with the next statement on the
    connection: its rows are there when ``Later.rows`` asks, without a round trip of their own
    (the inbound row's lock, riding with the message's first read). As what rides, a failure
    of it fails that next statement and dooms the transaction. Elsewhere it runs at once."""
    conn = _connection(session)
    raw = _raw(conn, statement, params)
    if raw is None or raw.wrap_errors or not conn.info.get(_RIDE):
        return Later(None, None, rows(session, statement, params))
    if session.autoflush:
        session.flush()
    _before_execute(conn, statement)  # what is queued goes first, into the pipeline
    _open_pipeline(conn)
    try:
        cursor = raw.run(conn, params)
    except BaseException:
        _abandon_pipeline(conn)
        raise
    conn.info[_UNREAD] = True  # left open, unread: the next statement's sync brings it
    return Later(raw, cursor, None)


def _now(conn: Connection, raw: _Raw, statement: Executable, params: Mapping[str, Any]) -> Any:
    """Run ``raw`` now, as the listeners would see ``statement`` run: what is queued goes
    first, in one pipeline with it, and a deferred statement's error raises here."""
    if raw.wrap_errors:  # SQLite: nothing queued, no pipeline
        return raw.run(conn, params)
    _before_execute(conn, statement)
    try:
        cursor = raw.run(conn, params)
        _after_cursor_execute(conn)  # the pipeline's results read
    except BaseException:
        _abandon_pipeline(conn)
        raise
    return cursor


class _Raw:
    """A statement compiled once for the connection's dialect (for one set of parameter
    names), run on the driver's cursor: what SQLAlchemy's execution would send, without its
    per-statement context, events and result objects."""

    __slots__ = ("compiled", "defaults", "expanding", "expanding_names", "expansions", "keys",
                 "plan", "processors", "results", "statement", "tables", "target", "wrap_errors")

    def __init__(self, statement: Executable, compiled: SQLCompiler, keys: frozenset[str],
                 defaults: dict[str, Any], processors: dict[str, Callable[[Any], Any]],
                 results: tuple[Callable[[Any], Any] | None, ...] | None) -> None:
        self.statement = statement  # kept alive: the cache is keyed by its id
        self.compiled = compiled
        self.keys = keys  # the parameter names it was compiled for
        # construct_params for ``keys``, worked out once (``_plan``); None: not yet, False: no.
        self.plan: tuple[tuple[str, str | None, Any], ...] | bool | None = None
        # The expanded SQL (and its order and processors) by the lengths of the expanding
        # lists (``_expansion``); None: SQLAlchemy expands each time (a value rendered in the
        # SQL, a tuple IN).
        self.expanding_names = tuple(sorted(
            compiled.bind_names[b] for b in compiled.post_compile_params))
        reusable = not compiled.literal_execute_params and all(
            b.expanding and not b.literal_execute and not b.type._is_tuple_type
            for b in compiled.post_compile_params)
        self.expansions: dict[tuple[int, ...], _Expansion] | None = {} if reusable else None
        self.defaults = defaults  # scalar column defaults SQLAlchemy would fill in
        self.processors = processors  # the bind conversions SQLAlchemy would apply
        self.results = results  # the result columns' conversions (None: none has one)
        self.expanding = _post_compiled(compiled)  # an IN (list), rendered per call
        # SQLite's (qmark) statements take their parameters by position, and their errors are
        # wrapped as SQLAlchemy's execution wraps them; PostgreSQL's raise as the driver's.
        self.wrap_errors = compiled.positional
        # A write returning nothing: the table it writes (else None), and every table it
        # names (``_batches`` sends such writes together only if none sees another's rows).
        plain_write = isinstance(statement, UpdateBase) and not compiled.returning
        self.target = statement.table if plain_write else None  # type: ignore[attr-defined]
        self.tables = frozenset(find_tables(cast(ClauseElement, statement), include_crud=True)
                                ) if plain_write else frozenset()

    def statement_for(self, values: Mapping[str, Any]) -> tuple[str, MutableMapping[str, Any]]:
        """The SQL and the parameters (by name, converted) for ``values``."""
        sql, params, _order = self._statement_for(values)
        return sql, params

    def _statement_for(self, values: Mapping[str, Any]
                       ) -> tuple[str, MutableMapping[str, Any], Sequence[str] | None]:
        """``statement_for``, and the order of the names for a positional driver (else None)."""
        processors: Mapping[str, Any] = self.processors
        params: MutableMapping[str, Any]
        planned = self._params(values)
        if self.expanding:  # one placeholder per element, as SQLAlchemy renders it
            expansion = self._expansion(values, planned) if planned is not None else None
            if expansion is not None:
                sql, order, processors = expansion.sql, expansion.order, expansion.processors
                params = _expand(planned, expansion.names)  # type: ignore[arg-type]
            else:
                state = self.compiled.construct_expanded_state(values)
                sql, params, order = state.statement, dict(state.parameters), state.positiontup
                processors = {**self.processors, **state.processors}  # the elements' too
        else:
            sql, order = self.compiled.string, self.compiled.positiontup
            params = planned if planned is not None else self.compiled.construct_params(values)
        for name, value in self.defaults.items():
            if name not in values:  # construct_params gave it None
                params[name] = value
        for name, process in processors.items():
            if name in params:
                params[name] = process(params[name])
        return sql, params, order

    def _params(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """``compiled.construct_params(values)`` by the plan worked out for ``keys`` (the bind
        names each takes its value from, or the constant it has), or None: no plan for these
        values (other names, a bind SQLAlchemy computes per call), construct_params' way."""
        if self.plan is False or values.keys() != self.keys:
            return None
        if self.plan is None:
            self.plan = _plan(self.compiled, self.keys, values)
        if isinstance(self.plan, bool):
            return None
        return {name: constant if key is None else values[key]
                for name, key, constant in self.plan}

    def _expansion(self, values: Mapping[str, Any], planned: dict[str, Any]
                   ) -> _Expansion | None:
        """The expanded SQL for these lists' lengths: SQLAlchemy's own expansion the first
        time, kept if its parameters are what ``_expand`` makes of them (plain elements,
        nothing rendered from a value)."""
        expansions = self.expansions
        if expansions is None:
            return None
        lists = [planned.get(name) for name in self.expanding_names]
        if not all(isinstance(v, (list, tuple)) for v in lists):
            return None  # SQLAlchemy's way for this call
        lengths = tuple(len(v) for v in lists)  # type: ignore[arg-type]
        found = expansions.get(lengths)
        if found is not None:
            return found
        state = self.compiled.construct_expanded_state(values)
        if _expand(planned, self.expanding_names) != dict(state.parameters):
            self.expansions = None  # named otherwise than ``_expand`` names them: not reused
            return None
        found = expansions[lengths] = _Expansion(
            state.statement, state.positiontup, {**self.processors, **state.processors},
            self.expanding_names)
        return found

    def driver_statement(self, values: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and the parameters as the driver takes them (by position on SQLite)."""
        sql, params, order = self._statement_for(values)
        return sql, (params if order is None else tuple([params[name] for name in order]))

    def run(self, conn: Connection, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if not self.wrap_errors:
            self._run(conn, cursor, values)
            return cursor
        try:
            self._run(conn, cursor, values)
        except Exception as exc:  # a conversion's error too, as SQLAlchemy's StatementError
            sql = self.compiled.string
            conn._handle_dbapi_exception(exc, sql, values, cursor, None)
        return cursor

    def _run(self, conn: Connection, cursor: Any,
             values: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        params: Any
        if isinstance(values, Mapping):
            many, (sql, params) = False, self.driver_statement(values)
        else:  # executemany: one statement (no expanding IN in a write)
            many, sql = True, self.compiled.string
            params = [self.driver_statement(v)[1] for v in values]
        # Its listeners see it as any statement (tests and benches count statements so).
        conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, many)
        execute(cursor, sql, params, many)

    def fetch(self, cursor: Any) -> list[Any]:
        """The cursor's rows, with the conversions SQLAlchemy would apply."""
        found: list[Any] = cursor.fetchall()
        if self.results is None:
            return found
        conversions = self.results
        return [tuple(v if p is None else p(v) for p, v in zip(conversions, r, strict=True))
                for r in found]


class _Expansion(NamedTuple):
    """A statement with its expanding INs rendered for lists of given lengths."""

    sql: str
    order: Sequence[str] | None  # the parameters' order (a positional driver's), else None
    processors: Mapping[str, Callable[[Any], Any]]  # the elements' conversions too
    names: tuple[str, ...]  # the expanding parameters


def _expand(params: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``params`` with each list of ``names`` put as one parameter an element, named as
    SQLAlchemy names them (``ids_1``, ``ids_2``, ...)."""
    out = dict(params)
    for name in names:
        for n, element in enumerate(out.pop(name), 1):
            out[f"{name}_{n}"] = element
    return out


def _plan(compiled: SQLCompiler, keys: frozenset[str], values: Mapping[str, Any]
          ) -> tuple[tuple[str, str | None, Any], ...] | bool:
    """Where ``construct_params`` takes each bind's value from, for parameters named ``keys``:
    (bind name, key in the parameters, None) or (bind name, None, the constant it gave for
    ``values``: the bind's own value, or one the compiler collected); False if a bind is
    computed per call or required and missing, or if the plan does not give what
    construct_params gives for ``values``."""
    expected = compiled.construct_params(values)
    plan: list[tuple[str, str | None, Any]] = []
    for bind, name in compiled.bind_names.items():
        if bind.key in keys:
            plan.append((name, bind.key, None))
        elif name in keys:
            plan.append((name, name, None))
        elif bind.callable is not None or bind.required or name not in expected:
            return False
        else:
            plan.append((name, None, expected[name]))
    built = {name: constant if key is None else values[key] for name, key, constant in plan}
    return tuple(plan) if built == expected else False


def execute(cursor: Any, sql: str, params: Any, many: bool) -> None:
    """The driver call of a ``_Raw`` statement (one place: bench/statements.py counts them)."""
    if many:
        cursor.executemany(sql, params)
    else:
        cursor.execute(sql, params)


_RAWS: dict[tuple[int, str, frozenset[str]], _Raw | None] = {}
_RAW_DIALECTS = ("postgresql", "sqlite")
MAX_COMPILED = 1000


def _raw(conn: Connection, statement: Executable,
         params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> _Raw | None:
    """``statement`` compiled for the driver's cursor, or None: not on PostgreSQL or SQLite, or
    needing what only SQLAlchemy's execution does (a default computed in Python, escaped
    names)."""
    if conn.dialect.name not in _RAW_DIALECTS:
        return None
    first = params if isinstance(params, Mapping) else (params[0] if params else None)
    if first is None:
        return None
    key = (id(statement), conn.dialect.name, frozenset(first))
    try:
        raw = _RAWS[key]
    except KeyError:
        if len(_RAWS) >= MAX_COMPILED:  # meant for statements built once: never grows unbounded
            _RAWS.clear()
            _COMBINED.clear()
        raw = _RAWS[key] = _compile(conn.dialect, statement, first)
    if raw is not None and raw.statement is not statement:  # an id reused: compile again
        raw = _RAWS[key] = _compile(conn.dialect, statement, first)
    return raw


def _compile(dialect: Dialect, statement: Executable, keys: Mapping[str, Any]) -> _Raw | None:
    if not isinstance(statement, (UpdateBase, Select, CompoundSelect, TextClause)):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    assert isinstance(compiled, SQLCompiler)
    expanding = _post_compiled(compiled)
    reads = isinstance(statement, (Select, CompoundSelect))
    # Positional parameters only as SQLite's driver takes them (qmark), with their order.
    positional_ok = dialect.name == "sqlite" and dialect.paramstyle == "qmark" \
        and compiled.positiontup is not None
    if ((compiled.positional and not positional_ok) or compiled.escaped_bind_names
            or compiled.update_prefetch or (expanding and not reads)):
        return None
    results = tuple(c[3]._cached_result_processor(dialect, None)
                    for c in compiled._result_columns)
    defaults: dict[str, Any] = {}
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not default.is_scalar:
            return None
        defaults[column.key] = default.arg  # type: ignore[attr-defined]
    processors = dict(compiled._bind_processors)
    if not all(callable(p) for p in processors.values()):  # a tuple's (per element)
        return None
    return _Raw(statement, compiled, frozenset(keys), defaults,
                processors,  # type: ignore[arg-type]
                results if any(results) else None)


def _post_compiled(compiled: SQLCompiler) -> bool:
    """Whether the SQL is completed per call (an expanding IN, a literal-rendered value)."""
    return bool(compiled.post_compile_params or compiled.literal_execute_params)


def _run(conn: Connection, statement: Executable, params: Any) -> None:
    """Run a deferred statement: on the driver's cursor if it compiles for it."""
    raw = _raw(conn, statement, params)
    if raw is None:
        conn.execute(statement, params)
    else:
        raw.run(conn, params)


def _batches(conn: Connection, items: Deferred) -> list[Callable[[], None]]:
    """The deferred ``items`` as the statements to send, in order: on PostgreSQL a run of
    writes that cannot see one another's rows (no table written by one is referenced by
    another) goes as one statement (``_combined``), one sync of the driver's instead of one
    per write; any other item on its own."""
    out: list[Callable[[], None]] = []
    group: list[tuple[_Raw, Mapping[str, Any]]] = []
    written: set[Any] = set()
    referenced: set[Any] = set()

    def close() -> None:
        if len(group) == 1:
            raw, values = group[0]
            out.append(lambda: raw.run(conn, values))
        elif group:
            out.append(partial(_combined, conn, tuple(group)))
        group.clear()
        written.clear()
        referenced.clear()

    for statement, params in items:
        if isinstance(params, Sequence) and len(params) == 1:
            params = params[0]  # executemany of one row: one statement
        raw = _raw(conn, statement, params)
        if raw is None or raw.target is None or not isinstance(params, Mapping):
            close()
            out.append(partial(_run, conn, statement, params))
            continue
        if raw.target in referenced or raw.tables & written:
            close()
        group.append((raw, params))
        written.add(raw.target)
        referenced.update(raw.tables)
    close()
    return out


_COMBINED: dict[tuple[_Raw, ...], str] = {}
_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)s")


def _combined(conn: Connection, group: tuple[tuple[_Raw, Mapping[str, Any]], ...]) -> None:
    """Writes that see none of one another's rows as one statement: all but the last in a
    WITH (PostgreSQL runs each exactly once; foreign keys are checked at the statement's end),
    each one's parameters prefixed with its place."""
    key = tuple(raw for raw, _ in group)  # by identity
    sql = _COMBINED.get(key)
    if sql is None:
        parts = [_PLACEHOLDER.sub(rf"%(w{n}_\1)s", raw.compiled.string)
                 for n, (raw, _) in enumerate(group)]
        sql = _COMBINED[key] = ("WITH " + ", ".join(
            f"w{n} AS ({part})" for n, part in enumerate(parts[:-1])) + " " + parts[-1])
    params = {f"w{n}_{name}": value for n, (raw, values) in enumerate(group)
              for name, value in raw.statement_for(values)[1].items()}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
    execute(cursor, sql, params, False)


def _send(conn: Connection) -> None:
    queue: Deferred | None = conn.info.get(_QUEUE)
    if not queue and conn.info.get(_RIDING):
        return  # a RELEASE waits for the next statement, also past the scope's end
    _close_pipeline(conn)
    if not queue:
        return
    items = list(queue)
    queue.clear()  # before executing: the statements below pass through _before_execute
    batches = _batches(conn, items)
    if len(batches) == 1:
        batches[0]()
        return
    with conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
        for batch in batches:
            batch()


def _ride(conn: Connection) -> None:
    """The queue into the open pipeline (opened if need be), left open and unread: it goes
    with the next statement on the connection."""
    if _fill(conn):
        conn.info[_RIDING] = conn.info[_UNREAD] = True


def _fill(conn: Connection) -> bool:
    """Send the queue (if any) into the open pipeline, opened if need be, without reading
    it; whether there was anything."""
    queue: Deferred | None = conn.info.get(_QUEUE)
    if not queue:
        return False
    items = list(queue)
    queue.clear()
    pipeline = _open_pipeline(conn)
    conn.info[_FILLING] = True  # their own after_cursor_execute leaves the pipeline open
    try:
        for batch in _batches(conn, items):
            batch()
    except BaseException as exc:
        conn.info.pop(_PIPELINE, None)
        pipeline.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        conn.info.pop(_FILLING, None)
    return True


def _before_execute(conn: Connection, clauseelement: Any, *_args: Any) -> None:
    queue: Deferred | None = conn.info.get(_QUEUE)
    if isinstance(clauseelement, RollbackToSavepointClause):
        if queue:
            queue.clear()
        return  # an open pipeline (a SAVEPOINT riding along) closes with this statement
    if isinstance(clauseelement, ReleaseSavepointClause) and conn.info.get(_RIDE):
        # Riding: the RELEASE joins what rides (a failure fails the group, run again).
        _ride(conn)
        if queue is not None:  # in a scope: it rides on with the next statement
            _open_pipeline(conn)
            conn.info[_KEEP_OPEN] = conn.info[_RIDING] = conn.info[_UNREAD] = True
        else:
            conn.info.pop(_RIDING, None)  # the pipeline (if open) closes with the RELEASE
        return
    if isinstance(clauseelement, ReleaseSavepointClause):
        # A RELEASE that fails is not followed by a ROLLBACK TO (SQLAlchemy): what it would
        # carry goes on its own, so a failure raises while the savepoint can still be undone.
        _close_pipeline(conn)
        _send(conn)
        if queue is not None:  # in a scope: the RELEASE itself rides with the next statement
            _open_pipeline(conn)
            conn.info[_KEEP_OPEN] = conn.info[_RIDING] = conn.info[_UNREAD] = True
        return
    conn.info.pop(_RIDING, None)  # the pipeline (if open) now holds a statement to read
    # The queue, then this statement, in one round trip: the pipeline opened here is closed
    # (results read) once the driver has this statement (_after_cursor_execute).
    _fill(conn)
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
        _abandon_pipeline(context.connection)


def _abandon_pipeline(conn: Connection) -> None:
    """After a statement's error: close the open pipeline, keeping that error. If statements
    rode in it, whether they failed is not told apart from the statement's own error: the
    transaction is doomed (the group committer runs its units again one by one)."""
    conn.info.pop(_KEEP_OPEN, None)
    pipeline = conn.info.pop(_PIPELINE, None)
    if pipeline is not None:
        if conn.info.pop(_UNREAD, False):
            conn.info[_DOOMED] = True
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
        unread = conn.info.pop(_UNREAD, False)
        try:
            pipeline.__exit__(None, None, None)
        except BaseException:
            if unread:
                conn.info[_DOOMED] = True
            raise


class RodeAndFailed(RuntimeError):
    """A statement that rode with a later one failed: the transaction is not committed."""


def _before_commit(conn: Connection) -> None:
    _close_pipeline(conn)
    _send(conn)
    if conn.info.pop(_DOOMED, False):
        raise RodeAndFailed("a write sent with a later statement failed; the transaction is "
                            "rolled back, not committed")


def _drop(conn: Connection) -> None:
    queue: Deferred | None = conn.info.get(_QUEUE)
    if queue:
        queue.clear()
    conn.info.pop(_DOOMED, None)
    with suppress(Exception):
        _close_pipeline(conn)
    conn.info.pop(_DOOMED, None)
