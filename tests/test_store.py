"""The store: migrations, sessions and the site secret on each backend."""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from listserv.models import AuditEntry, MailingList, utcnow
from listserv.serve import schema_problem
from listserv.store import Store, commit_sync
from tests.harness import commit_syncs


def test_migrated_store_round_trips(store: Store) -> None:
    with store.session() as s:
        s.add(MailingList(name="x"))
    with store.session() as s:
        assert s.exec(select(MailingList)).one().name == "x"
    assert schema_problem(store) is None


def test_secret_is_made_once_and_kept(store: Store) -> None:
    first = store.secret()
    assert len(first) == 32 and store.secret() == first


def test_unmigrated_store_is_reported(db_url: str) -> None:
    store = Store(db_url)
    try:
        problem = schema_problem(store)
        assert problem is not None and "commonroom db upgrade" in problem
    finally:
        store.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/x.db")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.dispose()


def test_upgrade_keeps_existing_rows(db_url: str) -> None:
    """Each migration runs on a store that already holds data (NOT NULL columns get defaults)."""
    from sqlalchemy import text

    store = Store(db_url)
    try:
        store.upgrade("0001")
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO mailing_list (name, description, subject_prefix, nonmember_action, "
                "dmarc_mitigation, created_at) VALUES ('old', '', '', 'hold', 'auto', "
                "CURRENT_TIMESTAMP)"))
        store.upgrade()
        assert schema_problem(store) is None
        with store.session() as s:
            old = s.exec(select(MailingList)).one()
        assert (old.name, old.policy_scope, old.emergency, old.hold_days) == (
            "old", "vendors", False, 7)
    finally:
        store.dispose()


def test_a_store_opened_from_another_stores_settings_has_them(tmp_path: object) -> None:
    """serve's child processes open their stores this way, across a pickle (spawn)."""
    first = Store(f"sqlite:///{tmp_path}/x.db", synchronous="NORMAL")
    second = pickle.loads(pickle.dumps(first.settings)).open()
    try:
        assert second.url == first.url and second.settings == first.settings
        with second.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_commits_are_durable_against_power_loss(tmp_path: object) -> None:
    """Issue 7.13: the 250 means durable, so every commit is synced (synchronous=FULL, 2)."""
    store = Store(f"sqlite:///{tmp_path}/x.db")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        store.dispose()


def test_upgrade_to_0004_backfills_when_posts_were_accepted(db_url: str) -> None:
    """Accepted posts get accepted_at: the approval time if a moderator approved them, else the
    time they arrived; posts that never went out get none (issue 7.21)."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from listserv.models import Message

    arrived = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    approved = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    store = Store(db_url)
    try:
        store.upgrade("0003")
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO mailing_list (id, name, description, subject_prefix, "
                "nonmember_action, dmarc_mitigation, created_at) VALUES (1, 'old', '', '', 'hold', "
                "'auto', CURRENT_TIMESTAMP)"))
            for pk, status in ((1, "accepted"), (2, "accepted"), (3, "rejected"), (4, "held")):
                conn.execute(text(
                    "INSERT INTO message (id, list_id, message_id, envelope_from, envelope_to, "
                    "from_address, from_name, subject, received_at, size, dmarc_policy, policy, "
                    "status, reason, raw) VALUES (:pk, 1, :mid, '', '', '', '', 's', :at, 0, '', "
                    "'', :status, '', :raw)"),
                    {"pk": pk, "mid": f"m{pk}@x", "at": arrived, "status": status, "raw": b"x"})
            conn.execute(text(
                "INSERT INTO held (list_id, message_pk, rule, reason, held_at, resolved_at, "
                "resolution, resolved_by, token_hash) VALUES (1, 2, 'r', '', :at, :done, 'accept', "
                "'mod', '')"), {"at": arrived, "done": approved})
        store.upgrade()
        assert schema_problem(store) is None
        with store.session() as s:
            got = {m.id: (m.accepted_at, m.public_texts) for m in s.exec(select(Message))}
        assert got == {1: (arrived, None), 2: (approved, None), 3: (None, None), 4: (None, None)}
    finally:
        store.dispose()



def _fail_a_commit_with_store_session(store: Store) -> None:
    with store.session() as s:
        s.execute(text("INSERT INTO t_child (id, parent_id) VALUES (1, 99)"))


def _fail_a_commit_on_a_connection(store: Store) -> None:
    """As the group committer does: a Session bound to a Connection of the engine."""
    with store.engine.connect() as conn, Session(bind=conn) as s:
        s.execute(text("INSERT INTO t_child (id, parent_id) VALUES (1, 99)"))
        s.commit()


@pytest.mark.parametrize("fail", [_fail_a_commit_with_store_session,
                                  _fail_a_commit_on_a_connection])
def test_a_session_after_a_failed_commit_starts_clean(
        store: Store, fail: Callable[[Store], None]) -> None:
    """A COMMIT that fails (here a deferred foreign key, checked only at COMMIT; SQLite then
    stays in the transaction) must not leave the pooled connection inside it: the next sessions
    work, write only their own rows, and on SQLite the write lock is free again."""
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t_parent (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE t_child (id INTEGER PRIMARY KEY, parent_id INTEGER "
                          "REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)"))
    with pytest.raises(IntegrityError):
        fail(store)
    for n in (2, 3):  # more than once: the pool hands the same connection back
        with store.session() as s:
            s.execute(text(f"INSERT INTO t_parent (id) VALUES ({n})"))
    with store.session() as s:
        assert s.execute(text("SELECT count(*) FROM t_child")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM t_parent")).scalar() == 2
    if store.is_sqlite:  # another process can write now: no transaction was left open
        other = sqlite3.connect(store.url.split(":///", 1)[1], timeout=1, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO t_parent (id) VALUES (4)")
            other.execute("COMMIT")
        finally:
            other.close()


def test_a_connection_used_a_moment_ago_is_not_pinged_an_idle_one_is(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: PostgreSQL's pool pings a connection only after it idled ``PING_AFTER``
    (the pre-ping was a round trip in every transaction); a dead idle one is replaced."""
    if not store.is_postgres:
        pytest.skip("SQLite has no connections to lose")
    import time

    from listserv import store as store_mod

    dialect = store.engine.dialect
    pings: list[object] = []
    real = dialect.do_ping

    def counting(dbapi_conn: object) -> bool:
        pings.append(dbapi_conn)
        return real(dbapi_conn)

    monkeypatch.setattr(dialect, "do_ping", counting)
    monkeypatch.setattr(store_mod, "PING_AFTER", 0.2)
    for _ in range(3):
        with store.session() as s:
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert pings == [], "used moments ago: no ping"
    other = store.new_engine()  # the pooled connection dies while it idles
    with other.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.commit()
    other.dispose()
    time.sleep(0.3)
    with store.session() as s:
        assert s.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    assert pings, "idle longer than PING_AFTER: pinged, and replaced"


def _indexes(store: Store, table: str) -> dict[str, str]:
    """Index name -> its definition as the store keeps it (predicate included)."""
    with store.engine.connect() as conn:
        if store.is_postgres:
            rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                     "WHERE tablename = :t"), {"t": table})
        else:
            rows = conn.execute(text("SELECT name, coalesce(sql, '') FROM sqlite_master "
                                     "WHERE type = 'index' AND tbl_name = :t"), {"t": table})
        return {name: sql for name, sql in rows}


def test_0023_leaves_post_copies_out_of_the_digest_index_and_back(db_url: str) -> None:
    """Migration 0023 (fewer index entries a post): no ix_message_list_id, and
    ix_outbox_digest_id only over digest copies; its downgrade puts both back as they were."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from listserv.store import MIGRATIONS

    store = Store(db_url)
    try:
        store.upgrade()
        assert "ix_message_list_id" not in _indexes(store, "message")
        assert "digest_id IS NOT NULL" in _indexes(store, "outbox")["ix_outbox_digest_id"]
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0022")
        assert "ix_message_list_id" in _indexes(store, "message")
        assert "NOT NULL" not in _indexes(store, "outbox")["ix_outbox_digest_id"]
        store.upgrade()
        assert schema_problem(store) is None
        assert "digest_id IS NOT NULL" in _indexes(store, "outbox")["ix_outbox_digest_id"]
    finally:
        store.dispose()


def write_audit(engine: Any, action: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(AuditEntry).values(list_id=None, actor="test", action=action,
                                              detail="", at=utcnow()))


def test_a_lazy_transaction_commits_without_a_sync_and_the_connection_forgets_it(
        tmp_path: object) -> None:
    """``async_commit``: a lazy transaction commits NORMAL (no fdatasync in WAL mode); the
    pooled connection it ran on is FULL again for whatever comes next, write or read."""
    store = Store(f"sqlite:///{tmp_path}/x.db")
    store.upgrade()
    try:
        with commit_syncs(store) as syncs:
            write_audit(store.lazy_engine, "lazy")
            write_audit(store.engine, "durable")
            write_audit(store.lazy_engine, "lazy again")
        assert syncs == ["NORMAL", "FULL", "NORMAL"]
        with store.engine.connect() as conn:  # the pool's one connection, back to the store's
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == 3
    finally:
        store.dispose()


def test_a_lazy_transaction_that_rolls_back_leaves_its_connection_durable(
        tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/x.db")
    store.upgrade()
    try:
        with pytest.raises(RuntimeError), store.lazy_engine.begin() as conn:
            conn.execute(insert(AuditEntry).values(list_id=None, actor="t", action="gone",
                                                  detail="", at=utcnow()))
            raise RuntimeError("rolled back")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        with commit_syncs(store) as syncs:
            write_audit(store.engine, "durable")
        assert syncs == ["FULL"]
    finally:
        store.dispose()


def test_a_store_the_operator_opened_normal_stays_normal(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/x.db", synchronous="NORMAL")
    store.upgrade()
    try:
        with commit_syncs(store) as syncs:
            write_audit(store.lazy_engine, "lazy")
            write_audit(store.engine, "normal")
        assert syncs == ["NORMAL", "NORMAL"]
    finally:
        store.dispose()


@pytest.mark.parametrize(("synchronous", "lazily", "level"), [
    ("FULL", False, "FULL"), ("FULL", True, "NORMAL"),
    ("NORMAL", False, "NORMAL"), ("NORMAL", True, "NORMAL")])
def test_a_lazy_commit_is_never_more_durable_nor_less_than_it_may(
        synchronous: str, lazily: bool, level: str) -> None:
    assert commit_sync(synchronous, lazily) == level


def test_one_statement_is_its_own_transaction_on_postgresql_only(store: Store) -> None:
    """PostgreSQL: autocommit, so no BEGIN and COMMIT round trips (and a second statement
    would be a second transaction); SQLite: the store's engine, which commits on ``begin``."""
    with store.session() as s:
        s.add(MailingList(name="before"))
    with store.one_statement().connect() as c:  # no commit: closing rolls back a transaction
        c.execute(text("UPDATE mailing_list SET name = 'after'"))
    with store.session() as s:
        name = s.exec(select(MailingList)).one().name
    assert name == ("after" if store.is_postgres else "before")
    with store.one_statement(read_only=True).begin() as c:
        assert c.execute(text("SELECT name FROM mailing_list")).scalar_one() == name


def test_a_statement_planned_each_time_is_never_prepared(store: Store) -> None:
    if not store.is_postgres:
        pytest.skip("psycopg's prepared statements are PostgreSQL's")
    from listserv.store import PLAN_EACH_TIME

    def prepared_after_ten(name: str, *options: bool) -> int:
        query = select(MailingList.id).where(getattr(MailingList, name) == "x")
        if options:
            query = query.execution_options(**{PLAN_EACH_TIME: True})
        with store.engine.connect() as c:
            for _ in range(10):  # psycopg prepares a statement on its fifth run by default
                c.execute(query).all()
            return int(c.execute(text("SELECT count(*) FROM pg_prepared_statements WHERE "
                                      "statement LIKE :q"), {"q": f"%WHERE mailing_list.{name} =%"})
                       .scalar_one())
    # The test can fail: psycopg does prepare the same statement without the option.
    assert prepared_after_ten("name") == 1
    assert prepared_after_ten("description", True) == 0
