"""The store: migrations, sessions and the site secret on each backend."""

from __future__ import annotations

from sqlmodel import select

from listserv.models import MailingList
from listserv.serve import schema_problem
from listserv.store import Store


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


def test_sqlite_commits_are_durable_against_power_loss(tmp_path: object) -> None:
    """Issue 7.13: the 250 means durable, so every commit is synced (synchronous=FULL, 2)."""
    store = Store(f"sqlite:///{tmp_path}/x.db")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        store.dispose()
