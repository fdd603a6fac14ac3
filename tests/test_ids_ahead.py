"""Ids taken ahead from the sequences (listserv/ids_ahead.py): drawn in blocks on PostgreSQL,
never twice across engines and threads, and a post's rows agree on them on both stores; a
deferred INSERT that fails still shunts its post whole."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlmodel import Session

from listserv import accept, ids_ahead, inbound_queue, participation, search
from listserv import config as config_mod
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.models import (
    InboundMessage,
    MailingList,
    Message,
    MessageStatus,
    Outbox,
    Thread,
    ThreadRef,
    utcnow,
)
from listserv.store import Store
from tests.harness import DOMAIN, mail, make_list, write_config
from tests.smtpsink import SmtpSink


@contextmanager
def draws(store: Store) -> Iterator[list[str]]:
    """The statements that draw ids from a sequence."""
    seen: list[str] = []

    def grab(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "nextval" in statement:
            seen.append(statement)
    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)


@contextmanager
def returning(store: Store) -> Iterator[list[str]]:
    """The tables of the INSERTs sent with RETURNING (which wait for the row's id)."""
    seen: list[str] = []

    def grab(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        if words[:2] == ["INSERT", "INTO"] and "RETURNING" in words:
            seen.append(words[2])
    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)


def test_ids_come_from_the_sequences_a_block_at_a_time(store: Store) -> None:
    with store.session() as s, draws(store) as seen:
        first = ids_ahead.take(s, "message")
        if not store.is_postgres:
            assert first is None, "SQLite inserts with RETURNING, as before"
            assert ids_ahead.take(s, "thread") is None
            return
        rest = [ids_ahead.take(s, "message") for _ in range(ids_ahead.BLOCK - 1)]
        thread = ids_ahead.take(s, "thread")
        assert len(seen) == 1, "one statement drew a block of each table's ids"
        assert [first, *rest] == list(range(1, ids_ahead.BLOCK + 1))
        assert thread == 1
        assert ids_ahead.take(s, "message") == ids_ahead.BLOCK + 1 and len(seen) == 2
        # The tables' own sequences: an id given at insert time comes after those taken.
        last = s.execute(text("SELECT last_value FROM message_id_seq")).scalar_one()
        assert last == 2 * ids_ahead.BLOCK


def test_ids_are_never_given_twice_across_engines_and_threads(store: Store, db_url: str) -> None:
    if not store.is_postgres:
        pytest.skip("ids are taken ahead on PostgreSQL only")
    other = Store(db_url)  # another engine (as another process would have) on the same database
    taken: list[int] = []
    lock = threading.Lock()

    def work(s: Store) -> None:
        with s.session() as session:
            mine = [ids_ahead.take(session, "thread") for _ in range(3 * ids_ahead.BLOCK + 1)]
        with lock:
            taken.extend(i for i in mine if i is not None)

    try:
        workers = [threading.Thread(target=work, args=(s,)) for s in (store, other) * 3]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        other.engine.dispose()
    assert len(taken) == 6 * (3 * ids_ahead.BLOCK + 1)
    assert len(set(taken)) == len(taken), "no id given twice"


def test_a_forked_process_does_not_use_its_parents_ids(store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if not store.is_postgres:
        pytest.skip("ids are taken ahead on PostgreSQL only")
    with store.session() as s:
        assert ids_ahead.take(s, "message") == 1
        monkeypatch.setattr(ids_ahead.os, "getpid", lambda: -1)  # as in a child process
        assert ids_ahead.take(s, "message") == ids_ahead.BLOCK + 1


@pytest.fixture
def cfg(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Config:
    make_list(store, "demo", members=("ann@example.org", "bob@example.org"),
              max_posts_per_hour=0)
    return config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})


def queue(cfg: Config, store: Store, subject: str, message_id: str,
          reply_to: str | None = None) -> int:
    sender = "ann@example.org"
    headers = {"In-Reply-To": f"<{reply_to}>"} if reply_to else None
    d = accept.Delivery(envelope_from=sender, destinations=(Destination("demo", Kind.POST),),
                        raw=mail(sender, f"demo@{DOMAIN}", subject, headers=headers,
                                 message_id=message_id))
    with store.session() as s:
        return inbound_queue.enqueue(s, accept.prepare(cfg, d), True)


def test_a_posts_rows_agree_on_its_ids(cfg: Config, store: Store) -> None:
    rows = [queue(cfg, store, "Opening", "p0@example.org"),
            queue(cfg, store, "Re: Opening", "p1@example.org", "p0@example.org"),
            queue(cfg, store, "Another", "p2@example.org")]
    with store.session() as s, returning(store) as waited:
        for row_id in rows:  # one transaction, as the group committer runs them
            assert inbound_queue.handle(s, cfg, row_id) is True
    # On PostgreSQL no INSERT waits for its id (on SQLite RETURNING costs no round trip).
    assert waited == ([] if store.is_postgres else ["thread", "message", "message",
                                                    "thread", "message"])
    with store.session() as s:
        posts = {m.message_id: m for m in s.execute(select(Message)).scalars()}
        threads = {t.id: t for t in s.execute(select(Thread)).scalars()}
        assert len(posts) == 3 and len(threads) == 2
        first, reply, other = (posts[f"p{n}@example.org"] for n in range(3))
        assert reply.thread_id == first.thread_id != other.thread_id
        for post in (first, other):
            assert post.thread_id is not None
            assert threads[post.thread_id].opening_pk == post.id
        assert threads[first.thread_id].post_count == 2  # type: ignore[index]
        refs = {r.ref: r.thread_id for r in s.execute(select(ThreadRef)).scalars()}
        assert refs == {m.message_id: m.thread_id for m in posts.values()}
        copies = s.execute(select(Outbox.message_pk, func.count()).group_by(Outbox.message_pk))
        assert dict(copies.all()) == {m.id: 2 for m in posts.values()}
        found = search.search(s, "Opening", [first.list_id]).hits  # type: ignore[list-item]
        assert {h.message_pk for h in found} == {first.id, reply.id}


@pytest.mark.parametrize("table", ["message", "thread"])
def test_a_post_whose_deferred_insert_fails_is_shunted_whole(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    """An id already in use (a bug: ids come from the sequence) makes the post's deferred
    INSERT fail: its other writes are rolled back with it, and it is kept as shunted."""
    first = queue(cfg, store, "Opening", "p0@example.org")
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, first) is True
        taken = {"message": s.execute(select(func.max(Message.id))).scalar_one(),
                 "thread": s.execute(select(func.max(Thread.id))).scalar_one()}
    second = queue(cfg, store, "Something else", "p1@example.org")
    real = ids_ahead.take

    def clash(session: Session, name: str) -> int | None:
        return taken[name] if name == table else real(session, name)

    monkeypatch.setattr(ids_ahead, "take", clash)
    with store.session() as s:
        assert inbound_queue.handle(s, cfg, second) is False
    with store.session() as s:
        statuses = s.execute(select(Message.message_id, Message.status, Message.reason)
                             .order_by(Message.received_at, Message.id)).all()
        assert [tuple(r[:2]) for r in statuses] == [
            ("p0@example.org", MessageStatus.ACCEPTED.value),
            ("p1@example.org", MessageStatus.SHUNTED.value)]
        assert "unique" in statuses[1].reason.lower() and table in statuses[1].reason
        assert s.execute(select(func.count()).select_from(Thread)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(ThreadRef)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Outbox)
                         .where(Outbox.message_pk != taken["message"])).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(InboundMessage)).scalar_one() == 0


# --- nothing takes ids for arrival order ----------------------------------------------------

def test_the_public_texts_compared_are_the_latest_accepted_not_the_highest_ids(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids taken ahead by two processes need not follow arrival: the lower id here went out
    later, so it is the latest public text."""
    make_list(store, "demo", members=("ann@example.org",))
    now = utcnow()
    with store.session() as s:
        ml = s.execute(select(MailingList)).scalars().one()
        for n, accepted in ((1, now), (2, now - timedelta(minutes=5))):
            s.add(Message(id=n, list_id=ml.id, message_id=f"p{n}@example.org",
                          accepted_at=accepted, policy='{"case": "public-domain"}',
                          public_texts=json.dumps([f"text {n}"]), raw=b""))
    monkeypatch.setattr(participation, "PUBLIC_TEXT_LIMIT", 1)
    with store.session() as s:
        assert participation.public_texts(s, ml) == ["text 1"]
