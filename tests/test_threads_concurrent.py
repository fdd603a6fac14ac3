"""Two posts of one list threaded at once on PostgreSQL (issue 12: several handling writers).

Real connections in real threads. A post is placed in a transaction held open (``Open``)
while another is placed beside it, so each race happens for sure, not by chance. Waits have
timeouts (a hang fails the test); nothing asserts how long anything took.
"""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from listserv import config as config_mod
from listserv import contention
from listserv.models import InboundMessage, MailingList, Message, MessageStatus, Outbox, Thread, ThreadRef
from listserv.store import Store
from listserv.threads import assign_thread
from tests.harness import DOMAIN, bare_list, mail, make_list, running, write_config
from tests.smtpsink import SmtpSink

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
WAIT = 20.0  # seconds before a wait counts as a hang


@pytest.fixture
def pg(store: Store) -> Store:
    if not store.is_postgres:
        pytest.skip("SQLite's write lock serialises writers: one handling writer there")
    return store




class Open:
    """A post placed (and its row written) in a transaction of its own, left open until
    ``commit``: ``placed`` is set once it is placed; ``thread`` is where it went."""

    def __init__(self, pool: ThreadPoolExecutor, store: Store, list_id: int, message_id: str,
                 references: Sequence[str] = (), subject: str = "Breakfast",
                 date: datetime = T0) -> None:
        self.placed = threading.Event()
        self._go = threading.Event()
        self.thread: Future[int] = pool.submit(self._run, store, list_id, message_id,
                                               references, subject, date)

    def _run(self, store: Store, list_id: int, message_id: str, references: Sequence[str],
             subject: str, date: datetime) -> int:
        with store.session() as s:
            tid = assign_thread(s, list_id, message_id, references, subject, date, "localgov")
            s.add(Message(list_id=list_id, thread_id=tid, message_id=message_id,
                          subject=subject, date=date, accepted_at=date, raw=b""))
            s.flush()
            self.placed.set()
            assert self._go.wait(WAIT)
        return tid

    def commit(self) -> int:
        self._go.set()
        return self.thread.result(WAIT)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as p:
        yield p


def _post(store: Store, list_id: int, message_id: str, references: Sequence[str] = (),
          subject: str = "Breakfast", date: datetime = T0) -> int:
    with ThreadPoolExecutor(1) as p:
        return Open(p, store, list_id, message_id, references, subject, date).commit()


def _state(store: Store, list_id: int) -> tuple[list[Thread], dict[str, int], dict[str, int]]:
    """The list's threads, where each ref points and each post's thread."""
    with store.session() as s:
        threads = list(s.exec(select(Thread).where(Thread.list_id == list_id)
                              .order_by(col(Thread.id))))
        refs = {r.ref: r.thread_id for r in s.exec(select(ThreadRef).where(
            ThreadRef.list_id == list_id))}
        posts = {m.message_id: m.thread_id for m in s.exec(select(Message).where(
            Message.list_id == list_id))}
        for t in threads:
            s.expunge(t)
    return threads, refs, posts


def _counts_match_posts(threads: list[Thread], posts: dict[str, int]) -> None:
    for t in threads:
        assert t.post_count == sum(1 for tid in posts.values() if tid == t.id), t


def test_posts_of_other_conversations_are_placed_at_once(pg: Store, pool: ThreadPoolExecutor) -> None:
    # The per-list lock placed them one after the other: the second waited for the first's
    # commit (the group's, under the group committer).
    lid = bare_list(pg)
    first = Open(pool, pg, lid, "a@x", subject="One")
    try:
        assert first.placed.wait(WAIT)
        second = Open(pool, pg, lid, "b@x", subject="Two", date=T0 + HOUR)
        assert second.placed.wait(WAIT), "a post of another conversation waited for the commit"
        assert second.commit() != first.commit()
    finally:
        first.commit()


def test_two_replies_to_one_phantom_share_a_thread(pg: Store, pool: ThreadPoolExecutor) -> None:
    lid = bare_list(pg)
    first = Open(pool, pg, lid, "a@x", ["p@x"], date=T0 + HOUR)
    assert first.placed.wait(WAIT)
    second = Open(pool, pg, lid, "b@x", ["p@x"], date=T0)
    assert not second.placed.wait(0.3), "both would create the phantom's thread"
    tid = first.commit()
    assert second.commit() == tid
    threads, refs, _ = _state(pg, lid)
    assert [(t.id, t.post_count, t.first_post_at, t.last_post_at) for t in threads] == [
        (tid, 2, T0, T0 + HOUR)]
    assert set(refs.values()) == {tid} and set(refs) == {"a@x", "b@x", "p@x"}


def test_replies_through_two_refs_of_one_thread_lose_no_count(
        pg: Store, pool: ThreadPoolExecutor) -> None:
    # No thread key in common: only the thread's row lock keeps the second from writing
    # post_count + 1 over the first's.
    lid = bare_list(pg)
    tid = _post(pg, lid, "x@x")
    assert _post(pg, lid, "y@x", ["x@x"], date=T0 + HOUR) == tid
    first = Open(pool, pg, lid, "a@x", ["x@x"], "Re: one", T0 + 2 * HOUR)
    assert first.placed.wait(WAIT)
    second = Open(pool, pg, lid, "b@x", ["y@x"], "Re: two", T0 + 3 * HOUR)
    assert not second.placed.wait(0.3)
    assert first.commit() == tid
    assert second.commit() == tid
    threads, _, posts = _state(pg, lid)
    assert [(t.post_count, t.first_post_at, t.last_post_at) for t in threads] == [
        (4, T0, T0 + 3 * HOUR)]
    _counts_match_posts(threads, posts)


def test_a_subject_match_waits_for_a_reply_joining_the_same_thread(
        pg: Store, pool: ThreadPoolExecutor) -> None:
    lid = bare_list(pg)
    tid = _post(pg, lid, "p@x", subject="Plans")
    # A reply renamed: its subject key is not the thread's, so no thread key in common.
    first = Open(pool, pg, lid, "a@x", ["p@x"], subject="Other matter", date=T0 + HOUR)
    assert first.placed.wait(WAIT)
    second = Open(pool, pg, lid, "b@x", subject="Re: Plans", date=T0 + 2 * HOUR)
    assert not second.placed.wait(0.3)  # it has read the thread, and waits for its row
    assert first.commit() == tid
    assert second.commit() == tid
    threads, _, posts = _state(pg, lid)
    assert [(t.post_count, t.subject, t.last_post_at) for t in threads] == [
        (3, "Plans", T0 + 2 * HOUR)]
    _counts_match_posts(threads, posts)


def test_two_new_posts_of_one_subject_start_one_thread(pg: Store, pool: ThreadPoolExecutor) -> None:
    lid = bare_list(pg)
    first = Open(pool, pg, lid, "a@x", subject="Plans")
    assert first.placed.wait(WAIT)
    second = Open(pool, pg, lid, "b@x", subject="Re: Plans", date=T0 + HOUR)
    assert not second.placed.wait(0.3), "both would start a thread"
    tid = first.commit()
    assert second.commit() == tid
    threads, _, _ = _state(pg, lid)
    assert [(t.id, t.post_count) for t in threads] == [(tid, 2)]


def test_a_post_joining_a_thread_being_merged_away_follows_it(
        pg: Store, pool: ThreadPoolExecutor) -> None:
    lid = bare_list(pg)
    one = _post(pg, lid, "a@x", subject="One")
    two = _post(pg, lid, "b@x", subject="Two", date=T0 + HOUR)
    assert _post(pg, lid, "b2@x", ["b@x"], subject="Two", date=T0 + 2 * HOUR) == two
    # c@x proves the two threads one conversation; d@x replies to b2@x, which c@x does not
    # name: it reads b2@x in thread two, which is deleted before it can lock it.
    merging = Open(pool, pg, lid, "c@x", ["a@x", "b@x"], subject="Both", date=T0 + 3 * HOUR)
    assert merging.placed.wait(WAIT)
    joining = Open(pool, pg, lid, "d@x", ["b2@x"], subject="Renamed", date=T0 + 4 * HOUR)
    assert not joining.placed.wait(0.3)
    assert merging.commit() == one
    assert joining.commit() == one
    threads, refs, posts = _state(pg, lid)
    assert [(t.id, t.post_count, t.first_post_at, t.last_post_at, t.subject)
            for t in threads] == [(one, 5, T0, T0 + 4 * HOUR, "One")]
    assert set(refs.values()) == {one} and set(posts.values()) == {one}


def test_a_later_post_of_a_transaction_steps_aside_instead_of_waiting(
        pg: Store, pool: ThreadPoolExecutor) -> None:
    # Waiting while holding an earlier post's locks could close a cycle with another writer.
    lid = bare_list(pg)
    tid = _post(pg, lid, "x@x")
    assert _post(pg, lid, "y@x", ["x@x"], date=T0 + HOUR) == tid
    other = Open(pool, pg, lid, "a@x", ["p@x"], "Phantom", T0 + HOUR)  # holds p@x's key
    held_row = Open(pool, pg, lid, "b@x", ["x@x"], "Re: Breakfast", T0 + HOUR)  # and the row
    try:
        assert other.placed.wait(WAIT) and held_row.placed.wait(WAIT)

        def writer() -> list[str]:
            outcomes = []
            with pg.session() as s:
                contention.allow_stepping_aside(s)
                assign_thread(s, lid, "first@x", [], "Elsewhere", T0)  # may wait: the first
                # c@x needs p@x's key; d@x (no key in common) the thread's row.
                for message_id, refs, subject in (("c@x", ["p@x"], "C"), ("d@x", ["y@x"], "D")):
                    try:
                        with s.begin_nested():
                            assign_thread(s, lid, message_id, refs, subject, T0 + HOUR)
                        outcomes.append("placed")
                    except contention.Contended:
                        outcomes.append("stepped aside")
            return outcomes

        assert pool.submit(writer).result(WAIT) == ["stepped aside", "stepped aside"]
    finally:
        other.commit()
        held_row.commit()
    threads, refs, _ = _state(pg, lid)  # what stepped aside left nothing behind
    assert [t.post_count for t in threads if t.id == tid] == [3]
    assert "c@x" not in refs and "d@x" not in refs


def test_two_handling_writers_handle_a_burst_once_each(
        pg: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    # The pipeline on PostgreSQL with two writers: replies, shared subjects and new threads of
    # one list at once, every post handled once, threaded right, and each copy sent once.
    members = ("ann@example.org", "bob@example.org", "cy@example.org")
    make_list(pg, "demo", members=members, max_posts_per_hour=0)
    cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}",
                                       server={"handling_writers": 2}), env={})
    assert cfg.server.handling_writers == 2
    ids = [make_msgid(domain="x").strip("<>") for _ in range(60)]

    def message(n: int) -> bytes:
        headers = {}
        if n % 3 == 0 and n >= 2:  # a reply to the post two before it, as bench/ingest.py
            headers = {"In-Reply-To": f"<{ids[n - 2]}>"}
        subject = f"Re: Topic {n - 2}" if headers else f"Topic {n % 7}"  # shared subjects
        return mail(members[n % 3], f"demo@{DOMAIN}", subject, message_id=ids[n],
                    headers=headers)

    def send(ns: range) -> None:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=WAIT) as client:
            for n in ns:
                client.sendmail(members[n % 3], f"demo@{DOMAIN}", message(n))

    with running(cfg, pg) as server:
        assert server.app.committer is not None and server.app.committer.writers == 2
        with ThreadPoolExecutor(6) as p:
            for done in [p.submit(send, range(k, 60, 6)) for k in range(6)]:
                done.result(60)
        server.settle(60)
        with pg.session() as s:
            kept = s.exec(select(Message.message_id, Message.status)).all()
            assert sorted(kept) == sorted((i, MessageStatus.ACCEPTED.value) for i in ids)
            assert s.exec(select(func.count()).select_from(InboundMessage)).one() == 0
            copies = s.exec(select(Outbox.message_pk, Outbox.recipient)).all()
            assert len(copies) == len(set(copies))  # no copy twice
            per_post = {pk: sum(1 for p, _ in copies if p == pk) for pk, _ in copies}
            assert len(per_post) == 60 and set(per_post.values()) == {len(members)}
        lid = s_list_id(pg)
        threads, refs, posts = _state(pg, lid)
        _counts_match_posts(threads, posts)
        assert sum(t.post_count for t in threads) == 60
        for n in range(3, 60, 3):  # each reply is in its parent's thread
            assert posts[ids[n]] == posts[ids[n - 2]]
        assert all(refs[i] == posts[i] for i in ids)


def s_list_id(store: Store) -> int:
    with store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == "demo")).one()
        assert ml.id is not None
        return ml.id
