"""The inbound queue (issue 12): a 250 means the message is committed in the queue; the
pipeline handles it afterwards, exactly once, even across restarts and several processes."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from listserv import accept, inbound_queue, posting
from listserv import config as config_mod
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.models import InboundMessage, Message, MessageStatus, Outbox
from listserv.store import Store
from tests.harness import DOMAIN, cli, mail, make_list, running, wait_until, write_config
from tests.smtpsink import SmtpSink

POST = f"demo@{DOMAIN}"
MEMBERS = ("ann@example.org", "bob@example.org")


@pytest.fixture
def cfg(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Config:
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    return config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})


def queue(s: Session, cfg: Config, subject: str, sender: str = MEMBERS[0]) -> int:
    d = accept.Delivery(envelope_from=sender, destinations=(Destination("demo", Kind.POST),),
                         raw=mail(sender, POST, subject))
    return inbound_queue.enqueue(s, accept.prepare(cfg, d), True)


def counts(store: Store) -> tuple[int, int, int]:
    """(queued rows, stored posts, outbox rows), as committed (a read: never the write lock)."""
    with store.read_session() as s:
        return tuple(s.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
                     for t in (InboundMessage, Message, Outbox))


def test_a_250_means_queued_and_committed_before_the_pipeline_runs(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the pipeline unable to finish, the accepted message is still in the store."""
    seen: list[tuple[int, int, int]] = []
    real = inbound_queue.handle

    def look_first(session: Session, cfg: Config, row_id: int,
                   known: accept.Prepared | None = None) -> bool | None:
        seen.append(counts(store))  # another connection: only what is committed
        return real(session, cfg, row_id, known)

    monkeypatch.setattr(inbound_queue, "handle", look_first)
    with running(cfg, store) as server:
        server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Hello"))
        server.drain()
    assert seen == [(1, 0, 0)], "the row committed, nothing handled yet"
    assert counts(store) == (0, 1, len(MEMBERS))


def test_messages_left_by_a_stopped_process_are_handled_at_the_next_start(
        cfg: Config, store: Store, sink: SmtpSink) -> None:
    with store.session() as s:  # accepted (250 sent) by a process that then died
        ids = [queue(s, cfg, f"Left {n}") for n in range(3)]
    assert counts(store)[0] == 3
    with running(cfg, store) as server:
        server.settle()
        server.drain()
    assert counts(store) == (0, 3, 3 * len(MEMBERS))
    with store.session() as s:
        subjects = s.exec(select(Message.subject).order_by(Message.id)).all()  # type: ignore[arg-type]
    assert subjects == ["Left 0", "Left 1", "Left 2"], ids
    wait_until(lambda: len(sink.messages) == 3 * len(MEMBERS), what="the copies")


def test_a_post_handled_later_keeps_the_time_of_its_250(cfg: Config, store: Store) -> None:
    """``received_at`` is when the door accepted the message, not when the pipeline got to it:
    the participation policy's counts and a competition's closing time go by it."""
    accepted_at = datetime(2026, 12, 6, 9, 0, 0, 123456, tzinfo=UTC)
    d = accept.Delivery(envelope_from=MEMBERS[0], destinations=(Destination("demo", Kind.POST),),
                        raw=mail(MEMBERS[0], POST, "Queued at nine"), received_at=accepted_at)
    admin = accept.Delivery(envelope_from=MEMBERS[1],
                            destinations=(Destination("demo", Kind.LEAVE),),
                            raw=mail(MEMBERS[1], f"demo-leave@{DOMAIN}", "leave"),
                            received_at=accepted_at)
    with store.session() as s:  # accepted (250 sent) by a process that then died
        for delivery in (d, admin):
            inbound_queue.enqueue(s, accept.prepare(cfg, delivery), True)
    with running(cfg, store) as server:
        server.settle()
    with store.read_session() as s:
        stored = s.exec(select(Message.subject, Message.received_at)  # type: ignore[call-overload]
                        .order_by(Message.id)).all()
    assert [tuple(r) for r in stored] == [("Queued at nine", accepted_at),
                                          ("leave", accepted_at)]


def test_a_row_that_keeps_failing_waits_for_a_person_after_max_attempts(
        cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.session() as s:
        row_id = queue(s, cfg, "Stuck")
        for _ in range(inbound_queue.MAX_ATTEMPTS):
            inbound_queue.record_failure(s, row_id, "RuntimeError: still broken")
    calls: list[int] = []
    monkeypatch.setattr(posting, "post", lambda *a, **k: calls.append(1))
    with running(cfg, store) as server:
        server.settle()
    assert calls == [], "not tried again on its own"
    with store.session() as s:
        [item] = inbound_queue.listing(s)
    assert (item.id, item.attempts, item.last_error) == (
        row_id, inbound_queue.MAX_ATTEMPTS, "RuntimeError: still broken")


def test_smtp_burst_each_message_handled_once(cfg: Config, store: Store,
                                              sink: SmtpSink) -> None:
    with running(cfg, store) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            for n in range(20):
                client.sendmail(MEMBERS[n % 2], [POST], mail(MEMBERS[n % 2], POST, f"Burst {n}"))
        server.settle()
        server.drain()
    assert counts(store) == (0, 20, 20 * len(MEMBERS))
    with store.session() as s:
        statuses = set(s.exec(select(Message.status)).all())
    assert statuses == {MessageStatus.ACCEPTED.value}


def test_two_processes_on_one_store_handle_each_row_once(cfg: Config, store: Store,
                                                        db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share a store on PostgreSQL only")
    with store.session() as s:  # left by a process that died: both sweep them at start
        for n in range(30):
            queue(s, cfg, f"Shared {n}")
    other = Store(db_url)
    try:
        with running(cfg, store) as one, running(cfg, other) as two:
            wait_until(lambda: counts(store)[0] == 0, timeout=30, what="every row handled")
            one.settle()
            two.settle()
            handled = [server.app.pipeline.handled for server in (one, two)  # type: ignore[union-attr]
                       ]
    finally:
        other.dispose()
    assert counts(store) == (0, 30, 30 * len(MEMBERS))
    assert sum(handled) == 30, handled
    with store.read_session() as s:
        ids = s.exec(select(Message.message_id)).all()
    assert len(set(ids)) == 30


def test_queue_list_inbound_shows_what_waits(cfg: Config, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "commonroom.toml"  # written by the cfg fixture
    empty = cli(path, "queue", "list", "--inbound")
    assert empty.exit_code == 0 and empty.output.strip() == "no accepted mail is waiting to be handled"
    with store.session() as s:
        row_id = queue(s, cfg, "Waiting")
        inbound_queue.record_failure(s, row_id, "RuntimeError: broken")
    listed = cli(path, "queue", "list", "--inbound")
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.splitlines()
    assert line.split("\t")[:5] == [str(row_id), MEMBERS[0], "demo:post", "1",
                                    "RuntimeError: broken"]


def test_queue_retry_inbound_gives_a_stuck_row_its_attempts_back(
        cfg: Config, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "commonroom.toml"
    with store.session() as s:
        row_id = queue(s, cfg, "Stuck")
        for _ in range(inbound_queue.MAX_ATTEMPTS):
            inbound_queue.record_failure(s, row_id, "RuntimeError: was broken")
    missing = cli(path, "queue", "retry", "--inbound", str(row_id + 1))
    assert missing.exit_code == 1 and "no queued message" in missing.output
    done = cli(path, "queue", "retry", "--inbound", str(row_id))
    assert done.exit_code == 0 and "tried again" in done.output, done.output
    with running(cfg, store) as server:  # the cause is fixed: the post goes out
        server.settle()
    assert counts(store)[:2] == (0, 1)
