"""Write-behind (listserv/write_behind.py): deferred writes go out together on PostgreSQL, in
order, before anything reads, and a failing one is rolled back with its savepoint."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import delete, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session

from listserv import accept, audit, inbound_queue, write_behind
from listserv import config as config_mod
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.models import (
    AuditEntry,
    InboundMessage,
    Message,
    MessageStatus,
    Outbox,
    SearchText,
    utcnow,
)
from listserv.store import Store
from tests.harness import DOMAIN, mail, make_list, write_config
from tests.smtpsink import SmtpSink

AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
INSERT = insert(AUDIT).inline()


def row(action: str, **extra: Any) -> dict[str, Any]:
    return {"at": utcnow(), "list_id": None, "actor": "test", "action": action, "target": "",
            "detail": "", **extra}


def actions(session: Session) -> list[str]:
    return list(session.execute(select(AUDIT.c.action).order_by(AUDIT.c.id)).scalars())


@contextmanager
def sent(store: Store) -> Iterator[list[str]]:
    """The statements that reach the driver (pipelined ones too), in order."""
    seen: list[str] = []

    def grab(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())
    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)


def test_deferred_writes_wait_and_go_in_order_before_a_read(store: Store) -> None:
    with store.session() as s, write_behind.scope(s), sent(store) as seen:
        write_behind.defer(s, INSERT, row("first"))
        write_behind.defer(s, INSERT, row("second"))
        if store.is_postgres:
            assert seen == [], "nothing sent yet"
        assert actions(s) == ["first", "second"], "the read sees them, in order"
        assert [x for x in seen if x != "BEGIN"][:2] == ["INSERT", "INSERT"]


def test_outside_a_scope_defer_runs_at_once(store: Store) -> None:
    with store.session() as s, sent(store) as seen:
        write_behind.defer(s, INSERT, row("now"))
        assert seen[-1:] == ["INSERT"]


def test_a_failing_member_of_a_batch_rolls_back_with_its_savepoint(store: Store) -> None:
    with store.session() as s:
        write_behind.defer(s, INSERT, row("kept", id=10**6))
    with store.session() as s:
        # The driver's error on PostgreSQL (sent at the scope's end), SQLAlchemy's on SQLite.
        with pytest.raises((IntegrityError, psycopg.errors.IntegrityError)), \
                s.begin_nested(), write_behind.scope(s):
            write_behind.defer(s, INSERT, row("before"))
            write_behind.defer(s, INSERT, row("duplicate", id=10**6))  # the primary key is taken
            write_behind.defer(s, INSERT, row("after"))
        # The transaction goes on after the savepoint's rollback, and nothing is left queued.
        write_behind.defer(s, INSERT, row("later"))
    with store.session() as s:
        assert sorted(actions(s)) == ["kept", "later"]


def test_a_failing_deferred_write_raises_as_the_statement_it_went_with(store: Store) -> None:
    with store.session() as s:
        write_behind.defer(s, INSERT, row("kept", id=10**6))
    with store.session() as s:
        with pytest.raises(IntegrityError), s.begin_nested(), write_behind.scope(s):
            write_behind.defer(s, INSERT, row("duplicate", id=10**6))
            actions(s)  # the read carries the queue (on PostgreSQL), and raises its error
        assert sorted(actions(s)) == ["kept"], "the session goes on"


def test_a_rolled_back_savepoint_drops_what_it_queued(store: Store) -> None:
    with store.session() as s:
        write_behind.defer(s, INSERT, row("kept", id=10**6))
    # Queued (on PostgreSQL) and bound to fail: the rollback drops it rather than send it.
    inner = row("inner", id=10**6) if store.is_postgres else row("inner")
    with store.session() as s, write_behind.scope(s):
        write_behind.defer(s, INSERT, row("outer"))
        with pytest.raises(RuntimeError), s.begin_nested():  # sends "outer" first
            write_behind.defer(s, INSERT, inner)
            raise RuntimeError("undo")
        write_behind.defer(s, INSERT, row("end"))
    with store.session() as s:
        assert [a for a in actions(s) if a != "kept"] == ["outer", "end"]


@pytest.fixture
def cfg(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Config:
    make_list(store, "demo", members=("ann@example.org", "bob@example.org"),
              max_posts_per_hour=0)
    return config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})


def test_a_post_whose_deferred_write_fails_is_shunted_whole(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The post's writes that went before (its row, thread, copies) are rolled back with the
    failing one; the message is kept as shunted and its queue row deleted once."""
    sender = "ann@example.org"
    with store.session() as s:
        write_behind.defer(s, INSERT, row("taken", id=10**6))
        d = accept.Delivery(envelope_from=sender,
                            destinations=(Destination("demo", Kind.POST),),
                            raw=mail(sender, f"demo@{DOMAIN}", "Doomed"))
        row_id = inbound_queue.enqueue(s, accept.prepare(cfg, d), True)
    real = audit.record

    def clash(session: Session, **kwargs: Any) -> None:
        if kwargs["action"].startswith("post-"):  # the post's audit row: a taken id
            write_behind.defer(session, INSERT, row("clash", id=10**6))
        else:
            real(session, **kwargs)

    monkeypatch.setattr(audit, "record", clash)
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, row_id) is False
    with store.session() as s:
        statuses = s.execute(select(Message.status)).scalars().all()
        assert statuses == [MessageStatus.SHUNTED.value]
        assert s.execute(select(func.count()).select_from(Outbox)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0


@contextmanager
def round_trips(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each round trip from here on: a pipeline's sync, or a statement sent alone (its first
    words). COMMIT is not counted."""
    trips: list[str] = []
    real_exit = psycopg.Pipeline.__exit__

    def synced(self: psycopg.Pipeline, *args: Any) -> None:
        trips.append("pipeline")
        real_exit(self, *args)

    def sent_alone(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not cursor.connection.pgconn.pipeline_status:
            trips.append(" ".join(statement.split()[:3]))

    monkeypatch.setattr(psycopg.Pipeline, "__exit__", synced)
    event.listen(store.engine, "before_cursor_execute", sent_alone)
    try:
        yield trips
    finally:
        event.remove(store.engine, "before_cursor_execute", sent_alone)


def queue_posts(cfg: Config, store: Store, subjects: list[str]) -> list[int]:
    """Posts from a member queued for handling, each a reply to the one before."""
    return [row_id for row_id, _ in queue_prepared(cfg, store, subjects)]


def clear_posts(store: Store) -> None:
    """No posts, copies or search rows (their message ids are used again)."""
    with store.session() as s:
        for table in (Outbox, SearchText, Message):
            s.execute(delete(table))
        s.commit()


def queue_prepared(cfg: Config, store: Store, subjects: list[str],
                   senders: dict[int, str] | None = None) -> list[tuple[int, accept.Prepared]]:
    """``queue_posts``, with each message as the SMTP door prepared it (``known``);
    ``senders``: another sender than ann for the posts of these indexes."""
    queued = []
    with store.session() as s:
        for n, subject in enumerate(subjects):
            sender = (senders or {}).get(n, "ann@example.org")
            headers = {"In-Reply-To": f"<p{n - 1}@example.org>"} if n else {}
            d = accept.Delivery(envelope_from=sender,
                                destinations=(Destination("demo", Kind.POST),),
                                raw=mail(sender, f"demo@{DOMAIN}", subject, headers=headers,
                                         message_id=f"p{n}@example.org"))
            prepared = accept.prepare(cfg, d)
            queued.append((inbound_queue.enqueue(s, prepared, True), prepared))
    return queued


def test_a_handled_post_costs_few_round_trips(cfg: Config, store: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: on PostgreSQL the handling writer is bound by its round trips. A reply (the
    commonest post) took 16 when each statement was one; pipelines now carry the writes that
    read nothing back, the threading lock and the SAVEPOINT; with its id taken ahead
    (listserv/ids_ahead.py) its row's INSERT rides with its next read: 8, not 9."""
    if not store.is_postgres:
        pytest.skip("round trips are PostgreSQL's")
    ids = queue_posts(cfg, store, ["Opening", "Re: Opening"])
    with store.session() as s:  # the first post: the list, bans and so on read once
        assert inbound_queue.handle(s, cfg, ids[0]) is True
    with store.session() as s, round_trips(store, monkeypatch) as trips:
        s.connection()
        trips.clear()  # from the first statement of the handling on
        assert inbound_queue.handle(s, cfg, ids[1]) is True
    assert len(trips) <= 8, trips


def test_a_release_rides_with_the_next_messages_first_read(cfg: Config, store: Store,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Messages handled in one transaction (a group of the committer): each one's RELEASE
    SAVEPOINT goes with the next statement, not in a round trip of its own, and a post's rows
    are all there once committed."""
    if not store.is_postgres:
        pytest.skip("round trips are PostgreSQL's")
    ids = queue_posts(cfg, store, ["Opening", "Re: Opening", "Re: Opening", "Re: Opening"])
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, ids[0]) is True
    with store.session() as s, round_trips(store, monkeypatch) as trips:
        s.connection()
        trips.clear()
        for row_id in ids[1:]:
            assert inbound_queue.handle(s, cfg, row_id) is True
    assert not [t for t in trips if t.startswith("RELEASE")], trips
    assert len(trips) <= 3 * 6, trips  # 6 each; the last RELEASE goes with the sync at COMMIT
    with store.session() as s:
        assert s.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Message)).scalar_one() == 4
        assert s.execute(select(func.count()).select_from(Outbox)).scalar_one() > 0


def test_writes_on_the_drivers_cursor_convert_and_default_as_sqlalchemy_would(
        store: Store) -> None:
    """PostgreSQL's deferred writes skip SQLAlchemy's execution (issue 12): an aware time in
    another zone is stored as its instant, a naive one is refused, and a column default
    SQLAlchemy fills in (outbox.priority) is filled in."""
    from datetime import timedelta, timezone

    from listserv.models import OutboxState
    elsewhere = utcnow().astimezone(timezone(timedelta(hours=-7)))
    with store.session() as s, write_behind.scope(s):
        write_behind.defer(s, INSERT, row("zoned", at=elsewhere))
        outbox_t = Outbox.__table__  # type: ignore[attr-defined]
        write_behind.defer(s, insert(outbox_t), {
            "recipient": "a@example.org", "sender": "b@example.org",
            "state": OutboxState.PENDING.value, "attempts": 0, "next_attempt_at": elsewhere,
            "created_at": elsewhere, "last_error": ""})
    with store.session() as s:
        at = s.execute(select(AUDIT.c.at).where(AUDIT.c.action == "zoned")).scalar_one()
        assert at == elsewhere and at.utcoffset() == timedelta(0)
        assert s.execute(select(Outbox.priority)).scalar_one() == 1
    naive = row("naive", at=utcnow().replace(tzinfo=None))
    with store.session() as s, pytest.raises((ValueError, StatementError)), \
            write_behind.scope(s):
        write_behind.defer(s, INSERT, naive)


def test_rows_and_returning_go_after_what_was_deferred(store: Store) -> None:
    with store.session() as s, write_behind.scope(s), sent(store) as seen:
        write_behind.defer(s, INSERT, row("first"))
        count = select(func.count()).select_from(AUDIT).where(AUDIT.c.action == "first")
        assert [tuple(r) for r in write_behind.rows(s, count, {})] == [(1,)]
        new_id = write_behind.returning(s, insert(AUDIT).returning(AUDIT.c.id), row("second"))
        assert actions(s) == ["first", "second"]
        assert s.execute(select(AUDIT.c.action).where(AUDIT.c.id == new_id)).scalar_one() \
            == "second"
        assert [x for x in seen if x != "BEGIN"][:3] == ["INSERT", "SELECT", "INSERT"]


def test_rows_expand_an_in_and_convert_columns_as_sqlalchemy_would(store: Store) -> None:
    """A read with an expanding IN and a converted (UTCDateTime) column gives what
    ``session.execute`` gives, on the driver's cursor on PostgreSQL."""
    from sqlalchemy import bindparam

    with store.session() as s:
        for name in ("a", "b", "c"):
            write_behind.defer(s, INSERT, row(name))
    read = select(AUDIT.c.action, AUDIT.c.at).where(
        AUDIT.c.action.in_(bindparam("names", expanding=True)),
        AUDIT.c.at <= bindparam("until", type_=AUDIT.c.at.type)).order_by(AUDIT.c.id)
    params = {"names": ["a", "c"], "until": utcnow()}
    with store.session() as s:
        got = [tuple(r) for r in write_behind.rows(s, read, params)]
        assert got == [tuple(r) for r in s.execute(read, params)]
        assert [name for name, _ in got] == ["a", "c"]
        assert all(at.utcoffset() is not None and at.tzinfo is not None for _, at in got)
        with pytest.raises((ValueError, StatementError)):
            write_behind.rows(s, read, {**params, "until": utcnow().replace(tzinfo=None)})


def test_writes_that_see_none_of_one_anothers_rows_go_as_one_statement(store: Store) -> None:
    """On PostgreSQL a run of deferred writes to tables none of the others names is sent as
    one statement (a WITH), in place; two writes to one table (the audit's order) or a write
    reading a table another writes are not."""
    from sqlalchemy import update

    inbound_t = InboundMessage.__table__  # type: ignore[attr-defined]
    with store.session() as s:
        row_id = s.execute(insert(inbound_t).returning(inbound_t.c.id), {
            "received_at": utcnow(), "envelope_from": "a@example.org", "destinations": "x",
            "dmarc_policy": "", "urgent": False, "attempts": 0, "last_error": "",
            "raw": b"x"}).scalar_one()
    rename = update(AUDIT).where(AUDIT.c.action == "second").values(target="renamed")
    with store.session() as s, sent(store) as seen, write_behind.scope(s):
        write_behind.defer(s, INSERT, row("first"))
        write_behind.defer(s, update(inbound_t).where(inbound_t.c.id == row_id),
                           {"last_error": "seen"})
        write_behind.defer(s, INSERT, row("second"))  # the audit again: a statement of its own
        write_behind.defer(s, rename, {})  # reads the audit: on its own too
    statements = [x for x in seen if x != "BEGIN"]
    if store.is_postgres:
        assert [x.split()[0] for x in statements] == ["WITH", "INSERT", "UPDATE"], statements
    with store.session() as s:
        assert actions(s) == ["first", "second"]
        assert s.execute(select(AUDIT.c.target).where(AUDIT.c.action == "second")
                         ).scalar_one() == "renamed"
        assert s.execute(select(inbound_t.c.last_error)).scalar_one() == "seen"


def test_a_failing_write_of_a_combined_statement_rolls_back_with_its_savepoint(
        store: Store) -> None:
    from sqlalchemy import update

    inbound_t = InboundMessage.__table__  # type: ignore[attr-defined]
    with store.session() as s:
        write_behind.defer(s, INSERT, row("kept", id=10**6))
    with store.session() as s:
        with pytest.raises((IntegrityError, psycopg.errors.IntegrityError)), \
                s.begin_nested(), write_behind.scope(s):
            write_behind.defer(s, update(inbound_t), {"last_error": "gone"})
            write_behind.defer(s, INSERT, row("duplicate", id=10**6))
        write_behind.defer(s, INSERT, row("later"))
    with store.session() as s:
        assert sorted(actions(s)) == ["kept", "later"]


@contextmanager
def through_sqlalchemy(store: Store) -> Iterator[list[str]]:
    """The statements that go through SQLAlchemy's execution (``before_execute``: not those
    run on the driver's cursor), by their first word."""
    seen: list[str] = []

    def grab(conn: Any, clauseelement: Any, *_: Any) -> None:
        seen.append(str(clauseelement).split()[0].upper())
    event.listen(store.engine, "before_execute", grab)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_execute", grab)


def test_the_handling_statements_skip_sqlalchemys_execution_on_both_stores(
        store: Store) -> None:
    """Issue 12: in a scope, deferred writes, ``rows``, ``returning``, SAVEPOINT and RELEASE
    go on the driver's cursor on SQLite as on PostgreSQL (~90 µs of Python a statement less);
    ``before_cursor_execute`` listeners still see each of them; the transaction is begun by
    SQLAlchemy (on SQLite, the fair write lock taken by the ``begin`` listener)."""
    count = select(func.count()).select_from(AUDIT).where(AUDIT.c.action == "one")
    with store.session() as s, sent(store) as cursor, through_sqlalchemy(store) as executed:
        with s.begin_nested(), write_behind.scope(s):
            write_behind.defer(s, INSERT, row("one"))
            assert [tuple(r) for r in write_behind.rows(s, count, {})] == [(1,)]
            write_behind.returning(s, insert(AUDIT).returning(AUDIT.c.id), row("two"))
        if store.is_sqlite:
            assert s.connection().connection.dbapi_connection.holding  # type: ignore[union-attr]
    assert [x for x in executed if x != "BEGIN"] == [], executed
    assert [x for x in cursor if x != "BEGIN"] == [
        "SAVEPOINT", "INSERT", "SELECT", "INSERT", "RELEASE"]
    with store.session() as s:
        assert actions(s) == ["one", "two"]


def test_on_sqlite_a_deferred_write_runs_at_once_and_its_error_is_sqlalchemys(
        store: Store) -> None:
    """No round trips to save on SQLite: a deferred write runs at the ``defer``, in order,
    and its error raises there, as SQLAlchemy's execution raised it (callers see what they
    saw before), inside the savepoint around the scope, which rolls back what went before."""
    if not store.is_sqlite:
        pytest.skip("SQLite's way")
    with store.session() as s:
        write_behind.defer(s, INSERT, row("kept", id=10**6))
    with store.session() as s:
        with pytest.raises(IntegrityError), s.begin_nested(), write_behind.scope(s):
            write_behind.defer(s, INSERT, row("before"))
            assert actions(s) == ["kept", "before"], "run at once"
            try:
                write_behind.defer(s, INSERT, row("duplicate", id=10**6))
            except IntegrityError as exc:
                assert "INSERT INTO audit " in str(exc)
                raise
            raise AssertionError("the duplicate raised at its defer")
        assert actions(s) == ["kept"]
        write_behind.defer(s, INSERT, row("later"))
    with store.session() as s:
        assert actions(s) == ["kept", "later"]


def test_a_compound_read_with_an_expanding_in_gives_what_sqlalchemy_gives(
        store: Store) -> None:
    """The thread read is a UNION ALL with an expanding IN and converted columns: on the
    driver's cursor it gives ``session.execute``'s rows, for lists of several lengths (the
    expanded SQL differs by length) and an empty one."""
    from sqlalchemy import bindparam, union_all

    with store.session() as s:
        for name in ("a", "b", "c", "d"):
            write_behind.defer(s, INSERT, row(name, target=name.upper()))
    by_action = select(AUDIT.c.action, AUDIT.c.at).where(
        AUDIT.c.action.in_(bindparam("names", expanding=True)))
    by_target = select(AUDIT.c.action, AUDIT.c.at).where(AUDIT.c.target == bindparam("target"))
    read = union_all(by_action, by_target)
    with store.session() as s, through_sqlalchemy(store) as executed:
        for names in (["a"], ["a", "c"], ["b", "c", "d"], [], ["d", "a"], ["a"]):
            params = {"names": names, "target": "B"}
            got = sorted(tuple(r) for r in write_behind.rows(s, read, params))
            executed.clear()
            assert got == sorted(tuple(r) for r in s.execute(read, params)), names
            assert executed == ["SELECT"], "compared with SQLAlchemy's own execution"
            assert sorted(a for a, _ in got) == sorted([*names, "b"])
            assert all(at.tzinfo is not None for _, at in got)


def test_sqlite_savepoints_on_the_cursor_roll_back_and_fire_their_events(
        store: Store) -> None:
    """SAVEPOINT and RELEASE on the driver's cursor: a nested savepoint rolled back undoes only
    its own writes (ROLLBACK TO is still SQLAlchemy's), and the connection's savepoint events
    fire as before."""
    fired: list[str] = []

    def note(name: str) -> Any:
        return lambda *_: fired.append(name)
    listeners = [(n, note(n)) for n in ("savepoint", "release_savepoint",
                                         "rollback_savepoint")]
    for name, fn in listeners:
        event.listen(store.engine, name, fn)
    try:
        with store.session() as s, s.begin_nested(), write_behind.scope(s):
            write_behind.defer(s, INSERT, row("outer"))
            with pytest.raises(RuntimeError), s.begin_nested():
                write_behind.defer(s, INSERT, row("inner"))
                raise RuntimeError("undo")
            write_behind.defer(s, INSERT, row("after"))
    finally:
        for name, fn in listeners:
            event.remove(store.engine, name, fn)
    assert fired == ["savepoint", "savepoint", "rollback_savepoint", "release_savepoint"]
    with store.session() as s:
        assert actions(s) == ["outer", "after"]


def test_reads_reuse_their_expansion_and_parameters_only_as_sqlalchemy_would_build_them(
        store: Store) -> None:
    """The expanded SQL is kept by the lists' lengths and the parameters built by a plan made
    once (issue 12): two INs in one read, lists of the same length with other values, a bind
    whose value is computed per call (no plan: SQLAlchemy's construct_params each time), and
    a tuple IN (SQLAlchemy's expansion each time) all read what ``session.execute`` reads."""
    from sqlalchemy import bindparam, tuple_

    with store.session() as s:
        for name in ("a", "b", "c", "d"):
            write_behind.defer(s, INSERT, row(name, target=name.upper()))
    two = select(AUDIT.c.action).where(
        AUDIT.c.action.in_(bindparam("names", expanding=True)),
        AUDIT.c.target.in_(bindparam("targets", expanding=True))).order_by(AUDIT.c.id)
    ticks = iter(range(100))
    computed = select(AUDIT.c.action).where(
        AUDIT.c.action.in_(bindparam("names", expanding=True)),
        AUDIT.c.id > bindparam("floor", callable_=lambda: next(ticks) - 1000)
    ).order_by(AUDIT.c.id)
    pairs = select(AUDIT.c.action).where(tuple_(AUDIT.c.action, AUDIT.c.target).in_(
        bindparam("pairs", expanding=True))).order_by(AUDIT.c.id)
    cases: list[tuple[Any, dict[str, Any]]] = [
        (two, {"names": ["a", "b"], "targets": ["B"]}),
        (two, {"names": ["c", "d"], "targets": ["D"]}),
        (two, {"names": ["a", "b", "c"], "targets": ["A", "C"]}),
        (two, {"names": ["d"], "targets": ["A", "D"]}),
        (computed, {"names": ["a", "d"]}),
        (computed, {"names": ["b", "c"]}),
        (pairs, {"pairs": [("a", "A"), ("b", "X")]}),
        (pairs, {"pairs": [("c", "C"), ("d", "D")]}),
    ]
    with store.session() as s:
        for statement, params in cases:
            got = [tuple(r) for r in write_behind.rows(s, statement, params)]
            assert got == [tuple(r) for r in s.execute(statement, params)], params
            assert got, params


def test_in_a_group_a_posts_last_writes_ride_and_one_that_fails_is_shunted_alone(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The group committer's transactions ride (``write_behind.riding``): a post's last writes
    go with the next post's first read, not in a round trip of their own. When one of them
    fails, it fails the group; the committer runs the units again one by one, not riding, and
    only that post is shunted."""
    from listserv.group_commit import QUIET, GroupCommitter

    if not store.is_postgres:
        pytest.skip("round trips are PostgreSQL's")
    ids = queue_posts(cfg, store, ["Opening", "Re: Opening", "Re: Opening", "Re: Opening"])
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, ids[0]) is True
    real = audit.record
    doomed = "p2@example.org"

    def clash(session: Session, **kwargs: Any) -> None:
        real(session, **kwargs)
        if kwargs["action"].startswith("post-") and doomed in kwargs["target"]:
            write_behind.defer(session, INSERT, row("clash", id=10**6))  # a taken id

    with store.session() as s:
        write_behind.defer(s, INSERT, row("taken", id=10**6))
    committer = GroupCommitter(store)
    gate = threading.Event()
    committer.start()
    try:
        with round_trips(store, monkeypatch) as trips:
            held = committer.submit(lambda _s: gate.wait(10))  # the rest queue: one group
            futures = [committer.submit(lambda s, i=i: inbound_queue.handle(s, cfg, i),
                                        background=True, own_savepoints=True)
                       for i in ids[1:]]
            trips.clear()
            monkeypatch.setattr(audit, "record", clash)
            time.sleep(QUIET * 2)  # arrivals quiet: the three handlings go as one group
            gate.set()
            held.result(10)
            answers = [f.result(10) for f in futures]
    finally:
        committer.stop()
    assert answers == [True, False, True], "the failing post shunted, the others handled"
    assert "failed to commit; retrying one by one" in caplog.text
    assert "RodeAndFailed" in caplog.text, "the COMMIT refused, not answered with a ROLLBACK"
    with store.session() as s:
        statuses = dict(s.execute(select(Message.message_id, Message.status)).all())
        assert statuses[doomed] == MessageStatus.SHUNTED.value, statuses
        assert sum(v == MessageStatus.ACCEPTED.value for v in statuses.values()) == 3
        assert s.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0
        assert actions(s).count("clash") == 0


def test_riding_saves_the_round_trip_of_each_posts_last_writes(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three replies handled in one transaction: riding, the last writes of each go with the
    next statement; not riding (a unit run alone), each post's go in a round trip of their own."""
    if not store.is_postgres:
        pytest.skip("round trips are PostgreSQL's")
    counts = []
    for ride in (False, True):
        clear_posts(store)
        ids = queue_posts(cfg, store, ["Opening", "Re: Opening", "Re: Opening", "Re: Opening"])
        with store.session() as s:
            assert inbound_queue.handle(s, cfg, ids[0]) is True
        with store.session() as s, round_trips(store, monkeypatch) as trips:
            conn = s.connection()
            with write_behind.riding(conn) if ride else contextlib.nullcontext():
                trips.clear()
                for row_id in ids[1:]:
                    assert inbound_queue.handle(s, cfg, row_id) is True
                s.commit()
        counts.append(len(trips))
    assert counts[1] <= counts[0] - 3, counts


def test_riding_a_rows_lock_goes_with_the_posts_first_read(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message the SMTP door prepared (``known``): riding, the lock of its queue row rides
    with the message's first read (``write_behind.read_later``) instead of a round trip of its
    own, one fewer a post; the posts are handled as before."""
    if not store.is_postgres:
        pytest.skip("round trips are PostgreSQL's")
    counts = []
    for known in (False, True):
        clear_posts(store)
        queued = queue_prepared(cfg, store, ["Opening", "Re: Opening", "Re: Opening",
                                             "Re: Opening"])
        answers, trips = handle_riding(cfg, store, queued, monkeypatch, known=known)
        assert answers == [True, True, True]
        counts.append(len(trips))
        with store.read_session() as s:
            assert s.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0
            accepted = s.execute(select(func.count()).select_from(Message).where(
                Message.status == MessageStatus.ACCEPTED.value)).scalar_one()
            assert accepted == 4
    assert counts[1] <= counts[0] - 3, counts


def test_riding_a_row_another_process_holds_is_left_to_it_and_nothing_of_it_kept(
        cfg: Config, store: Store) -> None:
    """The lock read that rode comes back empty (another process holds the row): the message's
    work is rolled back (its savepoint) and ``handle`` answers None, as when the lock is read
    at once; the others of the transaction are kept; the row is handled once it is free."""
    if not store.is_postgres:
        pytest.skip("another process holds rows on PostgreSQL only")
    queued = queue_prepared(cfg, store, ["Opening", "Re: Opening", "Re: Opening"])
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, queued[0][0]) is True
    (held_id, held), (free_id, free) = queued[1], queued[2]
    with store.session() as other:  # "another process": it holds the row's lock
        other.execute(select(InboundMessage.id).where(InboundMessage.id == held_id)
                      .with_for_update())
        with store.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '5s'"))  # a wait fails, not hangs
            with write_behind.riding(s.connection()):
                assert inbound_queue.handle(s, cfg, held_id, held) is None
                assert inbound_queue.handle(s, cfg, free_id, free) is True
                s.commit()
        other.rollback()
    with store.read_session() as s:
        ids = set(s.execute(select(Message.message_id)).scalars())
        left = s.execute(select(InboundMessage.id)).scalars().all()
    assert ids == {"p0@example.org", "p2@example.org"}, ids
    assert left == [held_id]
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, held_id, held) is True
        s.commit()


def handle_riding(cfg: Config, store: Store, queued: list[tuple[int, accept.Prepared]],
                  monkeypatch: pytest.MonkeyPatch, *,
                  known: bool = True) -> tuple[list[bool | None], list[str]]:
    """The first post handled alone, the others in one riding transaction (as the group
    committer's): their answers, and that transaction's round trips. ``known``: each message
    as the SMTP door prepared it (else read from its row)."""
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, queued[0][0], queued[0][1]) is True
    with (store.session() as s, round_trips(store, monkeypatch) as trips,
          write_behind.riding(s.connection())):
        trips.clear()
        answers = [inbound_queue.handle(s, cfg, row_id, prepared if known else None)
                   for row_id, prepared in queued[1:]]
        s.commit()
    return answers, list(trips)


def test_riding_a_posts_thread_read_goes_with_its_senders_standing_read(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``threads.prefetch``: riding, the read that places a post in its thread is sent with its
    sender's standing read, one round trip fewer a post; the posts are placed as before."""
    from listserv import posting

    if not store.is_postgres:
        pytest.skip("round trips are PostgreSQL's")
    counts = []
    for prefetching in (False, True):
        clear_posts(store)
        if not prefetching:
            monkeypatch.setattr(posting, "prefetch", lambda *_a, **_k: None)
        else:
            monkeypatch.undo()
        queued = queue_prepared(cfg, store, ["Opening", "Re: Opening", "Re: Opening",
                                             "Re: Opening"])
        answers, trips = handle_riding(cfg, store, queued, monkeypatch)
        assert answers == [True, True, True]
        counts.append(len(trips))
        with store.read_session() as s:
            placed = s.execute(select(Message.thread_id).where(
                Message.status == MessageStatus.ACCEPTED.value)).scalars().all()
        assert len(placed) == 4 and len(set(placed)) == 1, placed
    assert counts[1] <= counts[0] - 3, counts


def test_riding_a_held_posts_thread_read_is_left_unread_and_places_nothing(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A post that is not accepted (a stranger's, held) had its thread read sent all the same
    (``threads.prefetch``): it is not placed, the thread is not counted, and the members' posts
    beside it in the transaction are placed in the thread."""
    from listserv.models import Thread

    if not store.is_postgres:
        pytest.skip("riding is PostgreSQL's")
    queued = queue_prepared(cfg, store, ["Opening", "Re: Opening", "Re: Opening", "Re: Opening"],
                            senders={2: "stranger@elsewhere.example"})
    answers, _ = handle_riding(cfg, store, queued, monkeypatch)
    assert answers == [True, True, True]
    with store.read_session() as s:
        statuses = dict(s.execute(select(Message.message_id, Message.status)).all())
        thread_ids = set(s.execute(select(Message.thread_id).where(
            Message.thread_id.is_not(None))).scalars())  # type: ignore[union-attr]
        counts = s.execute(select(Thread.post_count)).scalars().all()
    assert statuses["p2@example.org"] == MessageStatus.HELD.value, statuses
    assert sum(v == MessageStatus.ACCEPTED.value for v in statuses.values()) == 3
    assert len(thread_ids) == 1 and counts == [3], (thread_ids, counts)
