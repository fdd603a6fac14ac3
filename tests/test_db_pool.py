"""The test databases reused between tests come back as new: no rows, ids from 1, the template's
schema; one that a test changed is not reused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from listserv.store import Store, engine_url
from tests.conftest import PG_URL, _pg_database
from tests.db_pool import MigratedPool, migrated_sqlite_file
from tests.harness import make_list

pg_only = pytest.mark.skipif(not PG_URL, reason="PostgreSQL tests need COMMONROOM_TEST_PG_URL")


def _scalar(url: str, sql: str) -> object:
    engine = create_engine(engine_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


@pg_only
def test_a_used_database_comes_back_empty_with_ids_from_one(pg_template: str) -> None:
    pool = MigratedPool(PG_URL, pg_template, _pg_database)
    try:
        url = pool.take()
        store = Store(url)
        make_list(store, "first", members=("a@example.org", "b@example.org"))
        store.dispose()
        open_store = Store(url)  # a connection the test forgot to close
        with open_store.session() as s:
            s.connection().execute(text("SELECT 1"))
        _scalar(url, "CREATE TABLE apscheduler_jobs (id text)")
        pool.give_back(url)
        open_store.dispose()

        assert pool.take() == url  # reused, not made again
        assert _scalar(url, "SELECT count(*) FROM mailing_list") == 0
        assert _scalar(url, "SELECT count(*) FROM subscription") == 0
        assert _scalar(url, "SELECT to_regclass('apscheduler_jobs')") is None
        store = Store(url)
        make_list(store, "second")
        store.dispose()
        assert _scalar(url, "SELECT id FROM mailing_list") == 1
        pool.give_back(url)
    finally:
        pool.close()


@pg_only
def test_a_database_whose_schema_changed_is_dropped(pg_template: str) -> None:
    pool = MigratedPool(PG_URL, pg_template, _pg_database)
    try:
        url = pool.take()
        _scalar(url, "ALTER TABLE mailing_list ADD COLUMN extra integer")
        pool.give_back(url)
        assert pool.take() != url
        name = url.rsplit("/", 1)[1]
        assert _scalar(PG_URL, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == 0
    finally:
        pool.close()


def test_the_sqlite_template_is_whole_in_its_file(tmp_path: Path) -> None:
    path = migrated_sqlite_file(tmp_path / "t.db")
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    store = Store(f"sqlite:///{copy}")
    make_list(store, "demo")
    with store.session() as s:
        assert s.connection().execute(text("SELECT count(*) FROM mailing_list")).scalar() == 1
    store.dispose()
