"""Migrated databases for tests, made once and reused: what made the suite slow was not the
tests but giving each one a fresh store (a PostgreSQL CREATE DATABASE … TEMPLATE ~0.3 s, the
SQLite migrations ~0.1 s, some 2,700 times).

- SQLite: the migrations run once into a template file, each test gets a copy of it.
- PostgreSQL: each worker keeps the databases its tests used. After a test, other connections to
  its database are ended, tables that the template does not have are dropped (the scheduler's
  ``apscheduler_jobs``), every row is deleted and every sequence restarted; the database is
  reused only if its schema is then exactly the template's (a test that downgraded it gets its
  database dropped), so a test never sees another's rows, ids or schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from listserv.store import Store, engine_url

_USER_SCHEMAS = "table_schema NOT IN ('pg_catalog', 'information_schema')"


def migrated_sqlite_file(path: Path) -> Path:
    """Migrate a new SQLite store at ``path`` and fold its WAL in, so that the file alone is the
    whole database and can be copied."""
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def _tables(conn: Connection) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(text(
        f"SELECT table_schema, table_name FROM information_schema.tables WHERE {_USER_SCHEMAS} "
        "AND table_type = 'BASE TABLE' ORDER BY 1, 2"))]


def _schema(conn: Connection) -> tuple[Any, ...]:
    """What a test could have changed: columns, indexes, constraints, sequences, and the
    migration the database says it is at."""
    return (
        tuple(conn.execute(text(
            "SELECT table_schema, table_name, column_name, data_type, column_default, is_nullable "
            f"FROM information_schema.columns WHERE {_USER_SCHEMAS} ORDER BY 1, 2, 3"))),
        tuple(conn.execute(text(
            "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3"))),
        tuple(conn.execute(text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace NOT IN ('pg_catalog'::regnamespace, "
            "'information_schema'::regnamespace) ORDER BY 1, 2"))),
        tuple(conn.execute(text(
            "SELECT schemaname, sequencename FROM pg_sequences ORDER BY 1, 2"))),
        tuple(conn.execute(text("SELECT version_num FROM alembic_version ORDER BY 1"))),
    )


class MigratedPool:
    """One xdist worker's migrated PostgreSQL databases (a test at a time takes one)."""

    def __init__(self, base_url: str, template: str,
                 create: Callable[[str, str], tuple[str, Any]]) -> None:
        self._base_url, self._template, self._create = base_url, template, create
        self._free: list[str] = []
        self._drops: dict[str, Callable[[], None]] = {}
        self._admin = create_engine(engine_url(base_url), isolation_level="AUTOCOMMIT",
                                    poolclass=NullPool)
        template_url = engine_url(base_url).rsplit("/", 1)[0] + "/" + template
        engine = create_engine(template_url, poolclass=NullPool)
        with engine.connect() as conn:
            self._template_tables = set(_tables(conn))
            self._template_schema = _schema(conn)
            seeded = [t for s, t in self._template_tables if t != "alembic_version" and conn.execute(
                text(f'SELECT EXISTS (SELECT 1 FROM "{s}"."{t}")')).scalar()]
        engine.dispose()
        if seeded:  # emptying a used database would then lose what the migrations wrote
            raise RuntimeError(f"the migrations write rows into {seeded}: teach MigratedPool "
                               "to put them back")

    def take(self) -> str:
        if self._free:
            return self._free.pop()
        url, drop = self._create(self._base_url, self._template)
        self._drops[url] = drop
        return url

    def give_back(self, url: str) -> None:
        """Empty ``url``'s database for the next test, or drop it if it cannot be made like new."""
        try:
            clean = self._empty(url)
        except Exception:
            clean = False
        if clean:
            self._free.append(url)
        else:
            self._drops.pop(url)()

    def close(self) -> None:
        for drop in self._drops.values():
            drop()
        self._drops.clear()
        self._free.clear()
        self._admin.dispose()

    def _empty(self, url: str) -> bool:
        name = url.rsplit("/", 1)[1]
        with self._admin.connect() as admin:  # what the test left open: threads, pools
            admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = :name AND pid <> pg_backend_pid()"),
                          {"name": name})
        engine = create_engine(engine_url(url), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                for schema, table in set(_tables(conn)) - self._template_tables:
                    conn.execute(text(f'DROP TABLE "{schema}"."{table}" CASCADE'))
                if _schema(conn) != self._template_schema:
                    return False
                # Foreign keys are triggers: off for this transaction, so any order deletes.
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for schema, table in self._template_tables:
                    if table != "alembic_version":
                        conn.execute(text(f'DELETE FROM "{schema}"."{table}"'))
                for schema, sequence in conn.execute(text(
                        "SELECT schemaname, sequencename FROM pg_sequences")).all():
                    conn.execute(text(f'ALTER SEQUENCE "{schema}"."{sequence}" RESTART'))
            return True
        finally:
            engine.dispose()
