"""Shared fixtures: where the real-world corpus lives, a database per test on each backend,
and the smarthost double."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db_pool import MigratedPool, migrated_sqlite_file
from tests.harness import write_config
from tests.smtpsink import SmtpSink

ROOT = Path(__file__).resolve().parents[1]


def _find_corpus() -> Path | None:
    candidates = [os.environ.get("COMMONROOM_CORPUS", ""), str(ROOT.parent / "shared" / "corpus"),
                  "/work/shared/corpus"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


CORPUS = _find_corpus()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if CORPUS is None:
        pytest.skip("the shared mail corpus is not here (set COMMONROOM_CORPUS to ../shared/corpus)")
    return CORPUS


# --- the store, on SQLite and (where COMMONROOM_TEST_PG_URL is set) on PostgreSQL -------------

PG_URL = os.environ.get("COMMONROOM_TEST_PG_URL", "")
BACKENDS = ["sqlite", "postgres"]


def _pg_database(base_url: str, template: str = "") -> tuple[str, object]:
    """Create a throw-away database on the test server (a copy of ``template`` if given);
    return its URL and a dropper."""
    import uuid

    from sqlalchemy import create_engine, text

    from listserv.store import engine_url

    name = f"commonroom_test_{uuid.uuid4().hex[:12]}"
    admin_url = engine_url(base_url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=__import__(
        "sqlalchemy.pool", fromlist=["NullPool"]).NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database that tests' stores are copied from: CREATE DATABASE …
    TEMPLATE is faster than running every migration for every test."""
    from listserv.store import Store

    url, drop = _pg_database(PG_URL)
    store = Store(url)
    store.upgrade()
    store.dispose()  # a template must have no connections while it is copied
    try:
        yield url.rsplit("/", 1)[1]
    finally:
        drop()  # type: ignore[operator]


@pytest.fixture(scope="session")
def pg_pool(pg_template: str) -> Iterator[MigratedPool]:
    """This worker's migrated PostgreSQL databases, emptied and reused from test to test."""
    pool = MigratedPool(PG_URL, pg_template, _pg_database)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests' stores are copied from (a copy takes a millisecond,
    the migrations ~0.1 s)."""
    return migrated_sqlite_file(tmp_path_factory.mktemp("template") / "migrated.db")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh database URL per test (SQLite file, or a PostgreSQL database): empty, or
    already migrated when the test also asks for ``store`` (whose upgrade is then a no-op).
    Migrated ones are copies of a template (SQLite) or emptied databases of this worker's pool
    (PostgreSQL), which hold nothing a test wrote before and have the template's schema."""
    migrated = "store" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "commonroom.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need COMMONROOM_TEST_PG_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    if migrated:
        pool: MigratedPool = request.getfixturevalue("pg_pool")
        url = pool.take()
        try:
            yield url
        finally:
            pool.give_back(url)
        return
    url, drop = _pg_database(PG_URL)
    try:
        yield url
    finally:
        drop()  # type: ignore[operator]


@pytest.fixture
def store(db_url: str):  # type: ignore[no-untyped-def]
    """A migrated Store on each backend."""
    from listserv.store import Store

    s = Store(db_url)
    s.upgrade()
    yield s
    s.dispose()


# --- the smarthost double and a configuration that delivers to it --------------------------

@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on loopback playing the smarthost; it keeps what it receives. It
    offers PIPELINING, as Postfix does, so every test that delivers goes the way production
    mail goes (pipelined and chained transactions); tests of the unpipelined path ask for
    ``SmtpSink(pipelining=False)``."""
    with SmtpSink(pipelining=True) as s:
        yield s


@pytest.fixture
def config_path(tmp_path: Path, db_url: str, sink: SmtpSink) -> Path:
    """A commonroom.toml for ``db_url`` whose smarthost is ``sink``."""
    return write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")


# --- page tests: the running site, a real browser, another origin (tests/web_harness.py) ----

from tests.web_harness import browser, browser_session, other_site, site  # noqa: E402, F401
