"""The inbound queue (issue 12): a 250 means the message is committed in the queue; the
pipeline handles it afterwards, exactly once, even across restarts and several processes."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from listserv import accept, inbound_queue, posting
from listserv import config as config_mod
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.group_commit import GroupCommitter
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


# --- a burst: posts wait for the pipeline, a request does not (issue 12) ---------------------

def test_hold_until_holds_posts_while_a_burst_goes_on_at_most_max_hold() -> None:
    hold = partial(inbound_queue.hold_until, gap=0.05, max_hold=2.0)
    assert hold(10.0, 9.99, burst=False, oldest=9.99) is None, "a lone arrival goes at once"
    assert hold(10.0, 9.99, burst=True, oldest=None) is None, "nothing held"
    assert hold(10.0, 9.99, burst=True, oldest=9.5) == pytest.approx(10.04), "until a pause"
    assert hold(10.05, 9.99, burst=True, oldest=9.5) is None, "the burst paused"
    assert hold(10.0, 9.99, burst=True, oldest=8.0) is None, "the oldest waited 2 s"


def test_only_a_request_is_prompt(cfg: Config) -> None:
    def prepared(kind: Kind) -> accept.Prepared:
        d = accept.Delivery(envelope_from=MEMBERS[0], destinations=(Destination("demo", kind),),
                            raw=mail(MEMBERS[0], POST, "Hi"))
        return accept.prepare(cfg, d)
    assert not accept.prompt(prepared(Kind.POST))
    assert all(accept.prompt(prepared(k)) for k in (Kind.JOIN, Kind.LEAVE, Kind.CONFIRM,
                                                    Kind.REQUEST, Kind.OWNER))


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Each row the pipeline hands to the writer, with when: (row id, monotonic time)."""
    seen: list[tuple[int, float]] = []
    real = inbound_queue.handle

    def record(session: Session, cfg: Config, row_id: int,
               known: accept.Prepared | None = None) -> bool | None:
        seen.append((row_id, time.monotonic()))
        return real(session, cfg, row_id, known)

    monkeypatch.setattr(inbound_queue, "handle", record)
    return seen


@contextlib.asynccontextmanager
async def pipeline_on(store: Store, cfg: Config, *, burst_gap: float,
                      max_hold: float) -> AsyncIterator[inbound_queue.Pipeline]:
    """A started pipeline (and its committer) with these hold settings; no sweeps."""
    committer = GroupCommitter(store)
    committer.start()
    pipeline = inbound_queue.Pipeline(store, cfg, committer, lambda: None, burst_gap=burst_gap,
                                      max_hold=max_hold, sweep_every=3600)
    try:
        await pipeline.start()
        yield pipeline
    finally:
        await pipeline.stop()
        committer.stop()


async def test_during_a_burst_posts_wait_for_a_pause_and_a_request_does_not(
        cfg: Config, store: Store, handed: list[tuple[int, float]]) -> None:
    """Posts accepted closer together than the burst gap are handed to the writer once arrivals
    pause; a request accepted meanwhile is handled at once."""
    with store.session() as s:
        ids = [queue(s, cfg, f"Burst {n}") for n in range(6)]
    # The start's sweep finds the rows: they were never held.
    async with pipeline_on(store, cfg, burst_gap=0.3, max_hold=30.0) as pipeline:
        await pipeline.settle()
        handed.clear()
        with store.session() as s:
            posts = [queue(s, cfg, f"Post {n}") for n in range(5)]
            request = queue(s, cfg, "help")
        for row_id in posts[:3]:  # a burst: each within the gap of the one before
            pipeline.accepted(row_id, True, prompt=False)
        pipeline.accepted(request, False, prompt=True)
        await asyncio.sleep(0.1)
        assert [r for r, _ in handed] == [posts[0], request] or [
            r for r, _ in handed] == [request], handed
        for row_id in posts[3:]:
            pipeline.accepted(row_id, True, prompt=False)
        burst_end = time.monotonic()
        await pipeline.settle()
        got = dict(handed)
        assert set(got) >= set(posts) | {request}
        late = [got[r] - burst_end for r in posts[1:]]
        assert min(late) >= 0.25, f"posts went before the burst paused: {late}"
    assert ids


async def test_a_held_post_waits_at_most_max_hold_while_arrivals_go_on(
        cfg: Config, store: Store, handed: list[tuple[int, float]]) -> None:
    async with pipeline_on(store, cfg, burst_gap=0.2, max_hold=0.5) as pipeline:
        with store.session() as s:
            rows = [queue(s, cfg, f"Post {n}") for n in range(20)]
        accepted_at: dict[int, float] = {}
        for row_id in rows:  # arrivals never pause for 1.9 s
            accepted_at[row_id] = time.monotonic()
            pipeline.accepted(row_id, True, prompt=False)
            await asyncio.sleep(0.1)
        assert handed[0][0] == rows[0], "the first arrival is no burst yet: it goes at once"
        assert handed[0][1] - accepted_at[rows[0]] < 0.1
        assert len(handed) > 2, "nothing more handled while arrivals went on"
        second_id, second_at = handed[1]
        assert second_id == rows[1]
        assert second_at - accepted_at[rows[1]] == pytest.approx(0.5, abs=0.2)
        await pipeline.settle()
        assert {r for r, _ in handed} == set(rows)


async def test_in_a_flood_of_non_members_posts_a_members_post_is_not_held(
        cfg: Config, store: Store, handed: list[tuple[int, float]]) -> None:
    async with pipeline_on(store, cfg, burst_gap=0.3, max_hold=30.0) as pipeline:
        with store.session() as s:
            flood = [queue(s, cfg, f"Flood {n}", sender="stranger@example.net")
                     for n in range(4)]
            member = queue(s, cfg, "From a member")
        for row_id in flood:
            pipeline.accepted(row_id, False, prompt=False)
        pipeline.accepted(member, True, prompt=False)
        await asyncio.sleep(0.15)  # the flood goes on (within the gap)
        assert [r for r, _ in handed] == [member], "the member's post is no burst of members' posts"
        await pipeline.settle()
        assert {r for r, _ in handed} == {*flood, member}
