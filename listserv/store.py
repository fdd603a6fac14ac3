"""The store: the only owner of the database engine and its sessions.

Invariants:
- Nothing else in the code base creates an engine.
- SQLite runs in WAL mode with foreign keys on and a busy timeout, so a reader never blocks the
  SMTP server's writes and two writers wait for each other instead of failing.
- SQLite's writers in this process take the write lock first come, first served
  (``fair_lock``), not in the order SQLite's busy handler happens to wake them.
- SQLite syncs the WAL on every commit (``synchronous=FULL``): the SMTP 250 follows a commit,
  and with NORMAL a power loss right after it could still lose that message. The exception is
  a transaction begun with the ``LAZY_COMMIT`` execution option (``async_commit`` says which,
  and why that is safe): it commits NORMAL, and its connection is back to the store's setting
  once it has ended; a store opened NORMAL stays NORMAL throughout.
- ``postgresql://`` URLs are driven by psycopg 3. A statement with the ``PLAN_EACH_TIME``
  execution option is never prepared: the server plans it each time it runs.
- The schema is created and upgraded only by Alembic (``upgrade``); tests use the same path.
- A failed COMMIT ends its transaction on both backends (SQLite's is rolled back by the
  connection), so no session is handed a pooled connection still inside an old transaction.
- Work registered with ``after_commit`` runs only once the session's transaction has committed
  (``Store.session``, or the group committer for a unit), never for one rolled back.
- ``serve``'s child processes (SMTP, delivery) open their stores from the parent's
  ``Store.settings``, so a store setting the App was started with (the URL it was given,
  ``synchronous``) holds in every process, not only in the parent.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Engine, Integer, any_, bindparam, cast, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import NullPool, Pool
from sqlmodel import Session

from listserv import write_behind
from listserv.fair_lock import FairLock
from listserv.models import SiteSetting

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
READ_ONLY = "commonroom_read_only"  # execution option: a transaction that will not write
AFTER_COMMIT = "commonroom_after_commit"  # session.info key: work waiting for the commit
# execution option: a write transaction whose COMMIT need not sync the WAL (``async_commit``)
LAZY_COMMIT = "commonroom_lazy_commit"
# execution option (PostgreSQL): psycopg never prepares the statement, so the server plans it
# for its parameters and the table as it is now (``_plan_each_time``)
PLAN_EACH_TIME = "commonroom_plan_each_time"


def among_ints(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``, ``name`` a parameter holding a list of integers (PostgreSQL):
    one parameter and one statement text however many values, where an expanded ``IN`` is
    rendered anew, a new statement to the server, for every length."""
    return column == any_(cast(bindparam(name, type_=ARRAY(Integer)), ARRAY(Integer)))


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once what ``session`` wrote so far is committed (at once for a session the
    store does not manage, as before this existed)."""
    hooks = session.info.get(AFTER_COMMIT)
    if hooks is None:
        hook()
    else:
        hooks.append(hook)


@contextmanager
def unit_hooks(session: Session) -> Iterator[list[Callable[[], None]]]:
    """Collect the ``after_commit`` work of one unit apart from the session's other units."""
    outer = session.info.get(AFTER_COMMIT)
    hooks: list[Callable[[], None]] = []
    session.info[AFTER_COMMIT] = hooks
    try:
        yield hooks
    finally:
        if outer is None:
            session.info.pop(AFTER_COMMIT, None)
        else:
            session.info[AFTER_COMMIT] = outer


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A SAVEPOINT whose ``after_commit`` work is dropped with it if it is rolled back."""
    with unit_hooks(session) as hooks, session.begin_nested():
        yield
    for hook in hooks:
        after_commit(session, hook)


def per_transaction(session: Session, key: str) -> dict[Any, Any]:
    """A cache in ``session.info`` under ``key`` that lasts as long as the session's current
    transaction: another session's change is seen from the next one."""
    transaction = session.get_transaction()
    if transaction is None:  # none begun yet (or just ended): nothing to keep it with
        return {}
    cached = session.info.get(key)
    if cached is None or cached[0] is not transaction:
        cached = session.info[key] = (transaction, {})
    values: dict[Any, Any] = cached[1]
    return values


def run_hooks(hooks: list[Callable[[], None]]) -> None:
    """Post-commit work must not undo a commit nor stop the next hook: log what fails."""
    for hook in hooks:
        try:
            hook()
        except Exception:
            logging.getLogger("commonroom.store").exception("post-commit work failed")


def engine_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


SYNCHRONOUS = ("FULL", "NORMAL")  # NORMAL only for measuring what durability costs (bench/)


def commit_sync(synchronous: str, lazily: bool) -> str:
    """SQLite's ``synchronous`` for a transaction of a store opened with ``synchronous``: NORMAL
    for a lazy one (in WAL mode its COMMIT writes the WAL but does not fdatasync it), else the
    store's own; never more durable than the operator chose. Pure."""
    return "NORMAL" if lazily and synchronous == "FULL" else synchronous


@dataclass(frozen=True)
class StoreSettings:
    """What a ``Store`` is opened with; picklable, for a child process to open the same."""

    url: str
    synchronous: str = "FULL"

    def open(self) -> Store:
        return Store(self.url, synchronous=self.synchronous)


class Store:
    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
        self.url = engine_url(url)
        self.synchronous = synchronous
        self._write_lock = FairLock()  # shared by this store's engines (SQLite)
        self.engine: Engine = self._create_engine(self.url, synchronous, self._write_lock)
        # For transactions that may commit without syncing (``LAZY_COMMIT``; SQLite only).
        self.lazy_engine: Engine = self.engine.execution_options(**{LAZY_COMMIT: True})

    @property
    def settings(self) -> StoreSettings:
        return StoreSettings(self.url, self.synchronous)

    def one_statement(self, *, read_only: bool = False) -> Engine:
        """The engine for a transaction of one statement. On PostgreSQL in autocommit: the
        statement is its own transaction, with no BEGIN and COMMIT round trips of their own
        (one round trip instead of three). On SQLite the store's engine (``READ_ONLY`` when
        ``read_only``), whose BEGIN takes the write lock as every writer's does. Run one
        statement per connection taken from it: in autocommit two would be two transactions."""
        if self.is_postgres:
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self.engine.execution_options(**{READ_ONLY: True}) if read_only else self.engine

    def new_engine(self) -> Engine:
        """A separate engine on the same database, for a component that disposes its own
        (APScheduler's job store does on shutdown; it must not take the store's with it)."""
        return self._create_engine(self.url, self.synchronous, self._write_lock)

    def share_write_lock(self) -> None:
        """On a SQLite file: this store's writers also take turns with the other processes'
        that call this (``FairLock.share_with_processes``; ``serve`` and its SMTP process)."""
        path = self.url.split(":///", 1)[1] if self.url.startswith("sqlite:///") else ""
        if path and path != ":memory:":
            self._write_lock.share_with_processes(path + "-writelock")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @staticmethod
    def _create_engine(url: str, synchronous: str, write_lock: FairLock) -> Engine:
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30,
                                                      "factory": _fair_connection(write_lock,
                                                                                synchronous)},
                                   poolclass=NullPool if not path else None)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # Let SQLAlchemy manage transactions explicitly (pysqlite's own BEGIN handling
                # defers it past SELECTs, which breaks read-then-write atomicity).
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                # IMMEDIATE takes the write lock at once, so two writers queue on busy_timeout
                # rather than one failing with "database is locked" on upgrade from read.
                # Read-only sessions (``read_session``) do not take it: WAL lets them run
                # beside a writer.
                options = conn.get_execution_options()
                dbapi_conn = conn.connection.dbapi_connection
                # SQLite refuses to change ``synchronous`` inside a transaction: set it for
                # this one now (a no-op unless it differs from the connection's current one).
                dbapi_conn.use_sync(commit_sync(synchronous, bool(options.get(LAZY_COMMIT))))
                if options.get(READ_ONLY):
                    conn.exec_driver_sql("BEGIN DEFERRED")
                else:
                    # Writers of this process queue first come, first served (fair_lock.py);
                    # the lock passes on when this transaction's COMMIT or ROLLBACK is done.
                    dbapi_conn.take_write_turn()
                    conn.exec_driver_sql("BEGIN IMMEDIATE")

            write_behind.install_savepoints(engine)
            return engine
        engine = create_engine(url, pool_size=10, max_overflow=20)
        _ping_when_idle(engine)
        _plan_each_time(engine)
        write_behind.install(engine)
        return engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on normal exit, rolled back on an exception."""
        with Session(self.engine, expire_on_commit=False) as s, unit_hooks(s) as hooks:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
        run_hooks(hooks)

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for long reads (building a digest): never commits, and on SQLite does not
        hold the write lock, so posts keep arriving meanwhile."""
        with Session(self.engine.execution_options(**{READ_ONLY: True}),
                     expire_on_commit=False) as s:
            try:
                yield s
            finally:
                s.rollback()

    def upgrade(self, revision: str = "head") -> None:
        """Create or upgrade the schema with Alembic."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def secret(self) -> bytes:
        """The site's secret for signed links, made on first use and kept in the store."""
        with self.session() as s:
            return site_secret(s)

    def dispose(self) -> None:
        self.engine.dispose()


PING_AFTER = 1.0  # seconds a pooled PostgreSQL connection may idle before it is pinged
_LAST_USED = "commonroom_last_used"  # ConnectionRecord.info: monotonic time of its last check-in


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle more than ``PING_AFTER``.
    The pre-ping was one round trip in every transaction (2-3 a handled post across the
    writer, the urgent writer and delivery: bench/README.md), while what it guards against
    (a server restarted, a connection dropped while idle) hardly happens to a connection used a
    moment ago; if it does, the statement fails as any disconnect does, the pool is
    invalidated, and the group committer retries the group's units on new connections."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)  # None: connected just now, as pre-ping skips
        if last is None or time.monotonic() - last <= PING_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # as pre-ping: a dead one means the others may be too
            raise InvalidatePoolError() from exc


def _plan_each_time(engine: Engine) -> None:
    """Statements with the ``PLAN_EACH_TIME`` option go unprepared. psycopg prepares a
    statement run five times on a connection, and the server may then keep one generic plan
    for it for the connection's life: for a queue table that was small then (the outbox, at
    start-up) that was a sequential scan, still used once the table held thousands of rows
    (bench/README.md, i12-pg-courier)."""

    @event.listens_for(engine, "do_execute")
    def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
        if not context.execution_options.get(PLAN_EACH_TIME):
            return None  # the dialect's own execute
        cursor.execute(statement, parameters, prepare=False)
        return True


def _fair_connection(lock: FairLock, synchronous: str) -> type[sqlite3.Connection]:
    """sqlite3 connections that hold ``lock`` from ``take_write_turn`` until their transaction
    has committed or rolled back (and so released SQLite's own write lock), and that are back
    to the store's ``synchronous`` once a transaction that changed it (``use_sync``) has
    ended, so no later user of the pooled connection inherits a lazy commit."""

    class FairConnection(sqlite3.Connection):
        holding = False
        sync = synchronous  # this connection's PRAGMA synchronous (set so on connect)

        def use_sync(self, level: str) -> None:
            """Set ``synchronous`` for the next transaction; only outside one."""
            if level != self.sync:
                self.execute(f"PRAGMA synchronous={level}")
                self.sync = level

        def _restore_sync(self) -> None:
            # Outside a transaction only; if one is still open (a failed rollback), the next
            # ``use_sync`` before BEGIN sets the level that transaction needs anyway.
            if self.sync != synchronous and not self.in_transaction:
                with suppress(sqlite3.Error):
                    self.use_sync(synchronous)

        def take_write_turn(self) -> None:
            if not self.holding:
                # Past SQLite's own busy timeout, go on and let SQLite decide, as before.
                self.holding = lock.acquire(timeout=30)

        def _pass_turn(self) -> None:
            if self.holding:
                self.holding = False
                lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            except BaseException:
                # A COMMIT SQLite refuses (a deferred foreign key, "database is locked") leaves
                # the transaction open, and SQLAlchemy, which counts it as ended, may return
                # the connection to the pool without a rollback: the next session would find
                # it inside the old transaction, still holding the write lock. End it, as
                # PostgreSQL does with a failed COMMIT.
                if self.in_transaction:
                    with suppress(sqlite3.Error):
                        super().rollback()
                raise
            finally:
                self._restore_sync()  # a PRAGMA, outside the transaction: microseconds
                self._pass_turn()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._restore_sync()
                self._pass_turn()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._pass_turn()

    return FairConnection


# The site secret by database: made once and never changed after (nothing but ``site_secret``
# writes site_setting "secret"), so read once per process; every held post signs a link with it
# (issue 12). Keyed by the engine's pool, which its read-only variants share; weak keys, so a
# disposed store takes its entry with it.
_SECRETS: WeakKeyDictionary[Pool, bytes] = WeakKeyDictionary()
_SECRET_MADE = "commonroom_secret_made"  # session.info: the transaction that made the secret


def site_secret(session: Session) -> bytes:
    bind = session.get_bind()
    pool = bind.pool if isinstance(bind, Engine) else bind.engine.pool
    known = _SECRETS.get(pool)
    if known is not None:
        return known
    row = session.get(SiteSetting, "secret")
    transaction = session.get_transaction()
    if row is None:
        row = SiteSetting(key="secret", value=secrets.token_hex(32))
        session.add(row)
        session.flush()
        session.info[_SECRET_MADE] = transaction
    # One made by this transaction may yet roll back: kept only once read in a later one.
    if session.info.get(_SECRET_MADE) is transaction:
        return bytes.fromhex(row.value)
    secret = _SECRETS[pool] = bytes.fromhex(row.value)
    return secret
