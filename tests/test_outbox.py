"""The outbox worker, end to end: real rows on each backend, real SMTP to an aiosmtpd sink."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from listserv.models import Bounce, MailingList, Message, Outbox, utcnow
from listserv.outbox import Done, OutboxWorker, backoff_seconds, enqueue_notice
from listserv.outbox_lease import LOCK_CLASS
from listserv.store import Store
from listserv.transports import MaildirTransport, Outcome, SendResult, SmtpTransport
from tests.harness import commit_syncs
from tests.smtpsink import DROP, SmtpSink

SENDER = "list-bounces@lists.example.org"


def payload(recipient: str, size: int = 300) -> bytes:
    body = (b"x" * 70 + b"\r\n") * (size // 72 + 1)
    return (f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: hello\r\n\r\n".encode() + body)


def add_notices(store: Store, n: int, *, prefix: str = "m", **columns: Any) -> list[int]:
    with store.session() as s:
        rows = [enqueue_notice(s, list_id=None, recipient=f"{prefix}{i}@example.org",
                               sender=SENDER, payload=payload(f"{prefix}{i}@example.org"))
                for i in range(n)]
        for row in rows:
            for key, value in columns.items():
                setattr(row, key, value)
        s.flush()
        return [row.id for row in rows if row.id is not None]


def outbox(store: Store) -> dict[str, Outbox]:
    with store.session() as s:
        return {r.recipient: r for r in s.scalars(select(Outbox))}


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """The smarthost, with and without PIPELINING: with it, the senders chain each copy's
    transaction onto the last one's message (transports.Chaining)."""
    with SmtpSink(pipelining=request.param) as s:
        yield s


def worker(store: Store, sink: SmtpSink, render: Any = None, **kw: Any) -> OutboxWorker:
    """A worker sending to ``sink``; ``render`` (default: "for RCPT" copies) makes the copies."""
    defaults: dict[str, Any] = {"connections": 2, "poll_interval": 0.05,
                                "backoff": lambda attempts: 0.0}
    return OutboxWorker(store, lambda: SmtpTransport(sink.host, sink.port, timeout=5),
                        render or (lambda pk, rcpt: b"Subject: post\r\n\r\nfor "
                                   + rcpt.encode() + b"\r\n"),
                        **(defaults | kw))


async def run(w: OutboxWorker, timeout: float = 10.0) -> None:
    await w.start()
    try:
        await w.drain(timeout)
    finally:
        await w.stop()


async def test_every_row_is_delivered_once(store: Store, sink: SmtpSink) -> None:
    add_notices(store, 40)
    with store.session() as s:  # a post: payload NULL, personalised by render()
        ml = MailingList(name="dev")
        s.add(ml)
        s.flush()
        msg = Message(list_id=ml.id, message_id="<p1@example.org>", raw=b"Subject: post\r\n\r\n")
        s.add(msg)
        s.flush()
        for i in range(10):
            s.add(Outbox(list_id=ml.id, message_pk=msg.id, recipient=f"p{i}@example.org",
                         sender=SENDER))
    await run(worker(store, sink))
    got = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert len(got) == 50 and set(got.values()) == {1}
    rows = outbox(store)
    assert {r.state for r in rows.values()} == {"sent"}
    assert all(r.attempts == 1 and r.sent_at is not None for r in rows.values())
    post = next(m for m in sink.messages if m.rcpt_tos == ("p3@example.org",))
    assert post.data.endswith(b"for p3@example.org\r\n") and post.mail_from == SENDER
    # Pipelining: most copies' transactions went in the write of the copy before them.
    chained = sum(c.count(b"\r\n.\r\nMAIL FROM:") for n in sink.sessions for c in sink.wire[n])
    assert chained >= (25 if sink.pipelining else 0), sink.wire


async def test_a_claims_outcomes_are_written_back_together(store: Store,
                                                          sink: SmtpSink) -> None:
    """Once nothing is left to send, not each time a sender finds the queue empty while the
    claim's last copies are still going (one write-back per sender, before)."""
    add_notices(store, 12)
    w = worker(store, sink, connections=3, flush_interval=30.0)  # no write-back by the clock
    written: list[int] = []
    write = w._write

    def counted(done: Any, released: Any) -> Any:
        written.append(len(done))
        return write(done, released)
    w._write = counted  # type: ignore[method-assign]
    await run(w)
    assert written == [12]
    assert {r.state for r in outbox(store).values()} == {"sent"}


async def test_4xx_is_retried_then_delivered_once(store: Store, sink: SmtpSink,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    (oid,) = add_notices(store, 1)
    sink.script_data(451, 250)
    with caplog.at_level(logging.INFO, "commonroom.outbox"):
        await run(worker(store, sink))
    assert [m.rcpt_tos for m in sink.messages] == [("m0@example.org",)]
    row = outbox(store)["m0@example.org"]
    assert (row.state, row.attempts) == ("sent", 2)
    assert row.last_error.startswith("451 ")
    deferred = [r for r in caplog.records if "deferred" in r.getMessage()]
    assert [(r.outbox_id, r.recipient) for r in deferred] == [(oid, "m0@example.org")]  # type: ignore[attr-defined]


async def test_4xx_is_retried_until_the_lifetime_is_over_then_fails(store: Store,
                                                                    sink: SmtpSink) -> None:
    """Issue 7.14: retry by time, not by count."""
    add_notices(store, 1, prefix="young", created_at=utcnow() - timedelta(days=4, hours=23))
    add_notices(store, 1, prefix="old", created_at=utcnow() - timedelta(days=5, minutes=1))
    sink.script_data(*[451] * 30)
    w = worker(store, sink, give_up_after=timedelta(days=5), connections=1)
    await w.start()
    for _ in range(200):  # both tried once, then the young one a dozen times (no back-off here)
        await asyncio.sleep(0.02)
        if outbox(store)["young0@example.org"].attempts >= 12:
            break
    await w.stop()
    rows = outbox(store)
    assert (rows["old0@example.org"].state, rows["old0@example.org"].attempts) == ("failed", 1)
    assert rows["old0@example.org"].last_error.startswith("451")
    young = rows["young0@example.org"]
    assert young.state in ("pending", "sending") and young.attempts >= 12
    assert sink.messages == []


async def test_retry_waits_for_the_backoff(store: Store, sink: SmtpSink) -> None:
    add_notices(store, 1)
    sink.script_data(451)
    await run(worker(store, sink, backoff=lambda attempts: 3600.0))
    row = outbox(store)["m0@example.org"]
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > utcnow() + timedelta(minutes=59)


async def test_5xx_bounces_and_records_a_bounce(store: Store, sink: SmtpSink) -> None:
    with store.session() as s:
        ml = MailingList(name="dev")
        s.add(ml)
        s.flush()
        for who in ("gone", "spam", "fine"):
            enqueue_notice(s, list_id=ml.id, recipient=f"{who}@example.org", sender=SENDER,
                           payload=payload(who))
    sink.rcpt_replies["GONE@example.org"] = 550
    sink.script_data(554)  # the first DATA that gets through is refused
    await run(worker(store, sink, connections=1))
    rows = outbox(store)
    assert rows["gone@example.org"].state == "bounced"
    assert rows["spam@example.org"].state == "bounced"
    assert rows["fine@example.org"].state == "sent"
    with store.session() as s:
        bounces = {b.address: b for b in s.scalars(select(Bounce))}
    assert set(bounces) == {"gone@example.org", "spam@example.org"}
    assert bounces["gone@example.org"].status == "5.1.1"  # RFC 3463, as a DSN's
    assert bounces["gone@example.org"].diagnostic.startswith("550 5.1.1")  # the reply
    assert bounces["spam@example.org"].diagnostic.startswith("554")
    assert {b.source for b in bounces.values()} == {"smtp"}
    assert {b.list_id for b in bounces.values()} == {ml.id}
    assert [m.rcpt_tos for m in sink.messages] == [("fine@example.org",)]
    assert len(sink.sessions) == 1  # RSET kept the one connection usable


async def test_connections_are_reused(store: Store, sink: SmtpSink) -> None:
    add_notices(store, 300)
    await run(worker(store, sink, connections=3, batch=50))
    assert len(sink.messages) == 300
    assert len(sink.sessions) <= 3


async def test_dropped_connections_lose_nothing(store: Store, sink: SmtpSink) -> None:
    add_notices(store, 200)
    sink.script_data(*([250] * 20), DROP, *([250] * 30), DROP)
    sink.delay = 0.002
    w = worker(store, sink, connections=2, batch=20)
    await w.start()
    await sink.wait_for(100)
    sink.drop_connections()  # and again between messages, as a smarthost restart would
    await w.drain(10)
    await w.stop()
    got = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert len(got) == 200 and set(got.values()) == {1}
    assert {r.state for r in outbox(store).values()} == {"sent"}
    assert len(sink.sessions) > 2  # it did reconnect


async def test_smarthost_restart_is_survived(sink: SmtpSink) -> None:
    transport = SmtpTransport(sink.host, sink.port, timeout=2)
    assert (await transport.send(SENDER, "a@example.org", payload("a"))).outcome is Outcome.SENT
    sink.stop()
    refused = await transport.send(SENDER, "b@example.org", payload("b"))
    assert (refused.outcome, refused.code) == (Outcome.RETRY, 0)
    sink.start()  # same port, as a restarted smarthost
    assert (await transport.send(SENDER, "c@example.org", payload("c"))).outcome is Outcome.SENT
    await transport.close()
    assert [m.rcpt_tos for m in sink.messages] == [("a@example.org",), ("c@example.org",)]
    assert sink.sessions == [1, 2]


async def test_restart_recovers_sending_rows_and_keeps_back_offs(store: Store,
                                                                 sink: SmtpSink) -> None:
    """Issue 7.15: a restart makes only in-flight rows due; backed-off rows keep their time."""
    later = utcnow() + timedelta(hours=1)
    add_notices(store, 5, prefix="dead", state="sending", claimed_by=12345, attempts=1)
    add_notices(store, 5, prefix="wait", attempts=3, next_attempt_at=later)
    w = worker(store, sink, poll_interval=60.0)  # only recovery can make these due at once
    await w.start()
    await sink.wait_for(5, timeout=5)
    await w.drain(5)
    await w.stop()
    rows = outbox(store)
    assert {m.rcpt_tos[0] for m in sink.messages} == {f"dead{i}@example.org" for i in range(5)}
    assert rows["dead0@example.org"].attempts == 2 and rows["dead0@example.org"].state == "sent"
    waiting = [rows[f"wait{i}@example.org"] for i in range(5)]
    assert {(r.state, r.attempts) for r in waiting} == {("pending", 3)}
    assert all(abs((r.next_attempt_at - later).total_seconds()) < 1 for r in waiting)


async def test_notices_are_claimed_before_a_large_fan_out(store: Store, sink: SmtpSink) -> None:
    """Issue 7.16: a confirmation queued after a big post's copies is sent before them."""
    with store.session() as s:
        ml = MailingList(name="dev")
        s.add(ml)
        s.flush()
        msg = Message(list_id=ml.id, message_id="<big@example.org>", raw=b"Subject: post\r\n\r\n")
        s.add(msg)
        s.flush()
        queued = utcnow() - timedelta(minutes=5)
        for i in range(300):
            s.add(Outbox(list_id=ml.id, message_pk=msg.id, recipient=f"p{i}@example.org",
                         sender=SENDER, next_attempt_at=queued, created_at=queued))
    add_notices(store, 1, prefix="confirm")
    await run(worker(store, sink, connections=1, batch=50))
    order = [m.rcpt_tos[0] for m in sink.messages]
    assert len(order) == 301 and order[0] == "confirm0@example.org"


async def test_wake_starts_delivery_without_waiting_for_the_poll(store: Store,
                                                                 sink: SmtpSink) -> None:
    w = worker(store, sink, poll_interval=60.0)
    await w.start()
    await asyncio.sleep(0.1)  # the worker found nothing and went to sleep
    add_notices(store, 3)
    w.wake()
    await sink.wait_for(3, timeout=3)
    await w.stop()


async def test_stop_finishes_or_releases_every_claimed_row(store: Store, sink: SmtpSink) -> None:
    add_notices(store, 60)
    sink.delay = 0.02
    w = worker(store, sink, connections=2, batch=30)
    await w.start()
    await sink.wait_for(5)
    await w.stop()
    rows = outbox(store).values()
    states = collections.Counter(r.state for r in rows)
    assert states["sending"] == 0 and states["sent"] == len(sink.messages)
    assert states["pending"] == 60 - len(sink.messages) > 0
    assert all(r.claimed_by is None for r in rows if r.state == "pending")


async def test_maildir_transport_writes_files(store: Store, tmp_path: Path) -> None:
    add_notices(store, 8)
    box = tmp_path / "outbox"  # not there yet: four transports create it at once
    w = OutboxWorker(store, lambda: MaildirTransport(box), lambda pk, rcpt: b"",
                     connections=4, poll_interval=0.05)
    await run(w)
    files = sorted((box / "new").iterdir())
    assert len(files) == 8
    texts = [f.read_bytes() for f in files]
    assert all(t.startswith(b"Return-Path: <" + SENDER.encode() + b">\nDelivered-To: m")
               for t in texts)
    assert all(b"\r\n" not in t for t in texts)
    assert {r.state for r in outbox(store).values()} == {"sent"}


# --- PostgreSQL: several workers on one table ------------------------------------------------

async def test_two_workers_send_every_row_exactly_once(store: Store, sink: SmtpSink) -> None:
    if not store.is_postgres:
        pytest.skip("several workers share the outbox only on PostgreSQL")
    add_notices(store, 400)
    sink.delay = 0.001
    a = worker(store, sink, connections=2, batch=20)
    b = worker(store, sink, connections=2, batch=20)
    await asyncio.gather(a.start(), b.start())
    await asyncio.gather(a.drain(20), b.drain(20))
    await asyncio.gather(a.stop(), b.stop())
    got = collections.Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert len(got) == 400 and set(got.values()) == {1}
    rows = outbox(store).values()
    assert {r.state for r in rows} == {"sent"}
    assert {r.claimed_by for r in rows} == {a.worker_id, b.worker_id}


async def test_recovery_leaves_a_live_workers_rows_alone(store: Store, sink: SmtpSink) -> None:
    if not store.is_postgres:
        pytest.skip("advisory locks are PostgreSQL's")
    live = worker(store, sink, poll_interval=60.0)
    await live.start()
    add_notices(store, 3, prefix="live", state="sending", claimed_by=live.worker_id)
    add_notices(store, 3, prefix="dead", state="sending", claimed_by=777)
    other = worker(store, sink, recover_interval=0.1)
    await other.start()
    await sink.wait_for(3, timeout=5)
    await asyncio.sleep(0.3)  # several periodic recoveries run meanwhile
    rows = outbox(store)
    assert {rows[f"live{i}@example.org"].state for i in range(3)} == {"sending"}
    assert {m.rcpt_tos[0] for m in sink.messages} == {f"dead{i}@example.org" for i in range(3)}
    await live.stop()  # its session ends, its lock is free: the other worker takes over
    await sink.wait_for(6, timeout=5)
    await other.drain(5)
    await other.stop()
    assert {r.state for r in outbox(store).values()} == {"sent"}
    assert len(sink.messages) == 6


async def test_worker_ids_are_held_as_advisory_locks(store: Store, sink: SmtpSink) -> None:
    if not store.is_postgres:
        pytest.skip("advisory locks are PostgreSQL's")
    from sqlalchemy import text

    w = worker(store, sink)
    await w.start()
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                 "AND classid = :c AND objid = :w AND objsubid = 2")
    with store.engine.connect() as c:
        assert c.execute(query, {"c": LOCK_CLASS, "w": w.worker_id}).scalar() == 1
    await w.stop()
    with store.engine.connect() as c:
        assert c.execute(query, {"c": LOCK_CLASS, "w": w.worker_id}).scalar() == 0


# --- pure parts ------------------------------------------------------------------------------

@pytest.mark.parametrize(("attempts", "low", "high"), [
    (1, 24, 36), (2, 48, 72), (3, 96, 144), (8, 2880, 4320), (20, 2880, 4320)])
def test_backoff_doubles_from_30_seconds_up_to_an_hour(attempts: int, low: float,
                                                       high: float) -> None:
    for _ in range(50):
        assert low <= backoff_seconds(attempts) <= high


def test_claimed_rows_are_marked(store: Store) -> None:
    ids = add_notices(store, 5)
    w = OutboxWorker(store, lambda: MaildirTransport("/nonexistent"), lambda pk, r: b"",
                     connections=1)
    w.worker_id = 42
    claimed = w._claim(3)
    assert [c.id for c in claimed] == ids[:3]
    with store.engine.begin() as conn:
        conn.execute(update(Outbox.__table__).values(state="sent"))  # type: ignore[attr-defined]
    assert w._claim(3) == []


def test_the_claim_syncs_and_the_write_back_need_not_on_sqlite(store: Store) -> None:
    """No copy leaves before its claim is durable; a lost write-back only sends copies again
    (listserv/async_commit.py), so on SQLite it commits without an fdatasync."""
    if not store.is_sqlite:
        pytest.skip("SQLite's synchronous setting")
    add_notices(store, 2)
    w = OutboxWorker(store, lambda: MaildirTransport("/nonexistent"), lambda pk, r: b"",
                     connections=1)
    w.worker_id = 42
    with commit_syncs(store) as syncs:
        claimed = w._claim(2)
        w._write([Done(c.id, c.list_id, c.recipient, c.sender, False, c.attempts, c.queued_at,
                       SendResult(Outcome.SENT, 250, "ok")) for c in claimed], [])
        assert syncs == ["FULL", "NORMAL"]
        assert w._claim(2) == []  # both written back as sent


# --- keeping the table small (issue 7.25) ----------------------------------------------------

async def test_sent_rows_are_pruned_after_keep_sent(store: Store, sink: SmtpSink) -> None:
    old, recent = utcnow() - timedelta(days=31), utcnow() - timedelta(days=29)
    add_notices(store, 3, prefix="old", state="sent", sent_at=old, created_at=old)
    add_notices(store, 1, prefix="recent", state="sent", sent_at=recent, created_at=recent)
    add_notices(store, 1, prefix="failed", state="failed", created_at=old)
    add_notices(store, 1, prefix="bounced", state="bounced", created_at=old)
    w = worker(store, sink, keep_sent=timedelta(days=30))
    await w.start()  # upkeep prunes soon after start, then every prune_interval
    try:
        for _ in range(100):
            if len(outbox(store)) < 6:
                break
            await asyncio.sleep(0.05)
    finally:
        await w.stop()
    assert set(outbox(store)) == {"recent0@example.org", "failed0@example.org",
                                  "bounced0@example.org"}


def test_outbox_indexes_hold_only_due_and_in_flight_rows(store: Store) -> None:
    from sqlalchemy import text

    with store.engine.connect() as c:
        if store.is_postgres:
            defs = dict(c.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'outbox'")).all())
        else:
            defs = dict(c.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'outbox' AND sql IS NOT NULL")).all())
    assert "WHERE" in defs["ix_outbox_due"] and "'pending'" in defs["ix_outbox_due"]
    assert "WHERE" in defs["ix_outbox_sending"] and "'sending'" in defs["ix_outbox_sending"]
    assert not any("state" in d.split("WHERE")[0] for d in defs.values())  # no full state index


def test_the_claim_reads_the_partial_due_index(store: Store) -> None:
    if store.is_postgres:
        pytest.skip("the plan is SQLite's; PostgreSQL picks by statistics")
    w = OutboxWorker(store, lambda: MaildirTransport("/nonexistent"), lambda pk, r: b"",
                     connections=1)
    captured: list[str] = []
    from sqlalchemy import event

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
             executemany: bool) -> None:
        if statement.startswith("UPDATE outbox") and "RETURNING" in statement:
            captured.append(statement)
    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        w._claim(5)
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    select_part = captured[0][captured[0].index("SELECT"):captured[0].rindex(") RETURNING")]
    with store.engine.connect() as c:
        plan = " ".join(str(r[-1]) for r in c.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + select_part,
            (utcnow().isoformat(" "), *(5, 0)[:select_part.count("?") - 1])).all())
    assert "ix_outbox_due" in plan, plan


def test_the_claim_finds_its_rows_by_key_however_large_the_table(store: Store) -> None:
    """PostgreSQL: the due ids first, then their rows by primary key. ``id IN (SELECT …)`` was
    planned as a hash join over a scan of every row, sent ones included (kept 30 days)."""
    if not store.is_postgres:
        pytest.skip("SQLite's plan is test_the_claim_reads_the_partial_due_index's")
    from sqlalchemy import text

    from listserv.outbox import _claim_statement

    with store.engine.begin() as c:
        c.execute(text(
            "INSERT INTO outbox (recipient, sender, state, attempts, next_attempt_at, created_at,"
            " last_error, priority, sent_at) SELECT 'm' || i || '@example.org', :s, "
            "CASE WHEN i <= 5000 THEN 'sent' ELSE 'pending' END, 1, now(), now(), '', 1, now() "
            "FROM generate_series(1, 5100) AS i"), {"s": SENDER})
        c.exec_driver_sql("ANALYZE outbox")
        claim = _claim_statement(True).compile(dialect=c.dialect)
        params = {**claim.params, "now": utcnow(), "limit": 40, "worker": 1}
        plan = "\n".join(r[0] for r in c.exec_driver_sql("EXPLAIN " + str(claim), params))
    assert "outbox_pkey" in plan and "Seq Scan" not in plan, plan


async def test_a_lost_lease_connection_is_noticed_and_taken_again(store: Store,
                                                                  sink: SmtpSink) -> None:
    """Issue 7.24: the worker checks its advisory lock's connection, as the scheduler does."""
    if not store.is_postgres:
        pytest.skip("advisory locks are PostgreSQL's")
    from sqlalchemy import text

    w = worker(store, sink, lease_interval=0.05, poll_interval=0.05)
    await w.start()
    query = text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                 "AND classid = :c AND objid = :w AND objsubid = 2")
    lock = {"c": LOCK_CLASS, "w": w.worker_id}
    with store.engine.connect() as c:
        first = c.execute(query, lock).scalar_one()
        c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
    try:
        for _ in range(100):  # the check notices, and takes the same id on a new connection
            await asyncio.sleep(0.05)
            with store.engine.connect() as c:
                pids = c.execute(query, lock).scalars().all()
            if pids and pids != [first]:
                break
        assert pids and pids != [first]
        add_notices(store, 3)  # and it delivers again
        await w.drain(5)
        assert len(sink.messages) == 3
    finally:
        await w.stop()


async def test_rendering_runs_off_the_event_loop(store: Store, sink: SmtpSink) -> None:
    """Issue 7.17: a renderer's cache miss (reading the store, preparing) does not stall the
    loop that also serves SMTP."""
    import time

    with store.session() as s:
        ml = MailingList(name="dev")
        s.add(ml)
        s.flush()
        msg = Message(list_id=ml.id, message_id="<p1@example.org>", raw=b"Subject: post\r\n\r\n")
        s.add(msg)
        s.flush()
        for i in range(2):
            s.add(Outbox(list_id=ml.id, message_pk=msg.id, recipient=f"p{i}@example.org",
                         sender=SENDER))

    def slow_render(pk: int, rcpt: str) -> bytes:
        time.sleep(0.4)  # a cache miss waiting on the database
        return b"Subject: post\r\n\r\nfor " + rcpt.encode() + b"\r\n"

    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    w = OutboxWorker(store, lambda: SmtpTransport(sink.host, sink.port, timeout=5), slow_render,
                     connections=2, poll_interval=0.05)
    try:
        await run(w)
    finally:
        tick.cancel()
    assert len(sink.messages) == 2
    assert max(gaps) < 0.3, f"the loop stalled for {max(gaps):.2f} s"


class CountingRenderer:
    """A renderer with a cache, as ``delivery.PostRenderer``: ``cached`` answers without the
    store once the post is prepared."""

    def __init__(self) -> None:
        import threading

        self.loop_thread = threading.get_ident()
        self.prepared = False
        self.calls: list[str] = []  # "call" (in a thread) or "cached-hit" (on the loop)

    def __call__(self, pk: int, rcpt: str) -> bytes:
        import threading

        assert threading.get_ident() != self.loop_thread
        self.calls.append("call")
        self.prepared = True
        return self.copy(rcpt)

    def cached(self, pk: int, rcpt: str) -> bytes | None:
        import threading

        assert threading.get_ident() == self.loop_thread
        if not self.prepared:
            return None
        self.calls.append("cached-hit")
        return self.copy(rcpt)

    @staticmethod
    def copy(rcpt: str) -> bytes:
        return b"Subject: post\r\n\r\nfor " + rcpt.encode() + b"\r\n"


def all_copies_sent(sink: SmtpSink, n: int) -> bool:
    return sorted(m.data for m in sink.messages) == sorted(
        CountingRenderer.copy(f"p{i}@example.org") for i in range(n))


def add_post_rows(store: Store, n: int) -> None:
    with store.session() as s:
        ml = MailingList(name="dev")
        s.add(ml)
        s.flush()
        msg = Message(list_id=ml.id, message_id="<p1@example.org>", raw=b"Subject: post\r\n\r\n")
        s.add(msg)
        s.flush()
        for i in range(n):
            s.add(Outbox(list_id=ml.id, message_pk=msg.id, recipient=f"p{i}@example.org",
                         sender=SENDER))


async def test_a_prepared_posts_copies_are_rendered_on_the_loop(store: Store,
                                                                sink: SmtpSink) -> None:
    """Once the post is cached a copy is one HMAC and a join: no thread hop per copy."""
    add_post_rows(store, 20)
    renderer = CountingRenderer()
    await run(worker(store, sink, renderer, connections=1))
    assert renderer.calls == ["call"] + ["cached-hit"] * 19
    assert all_copies_sent(sink, 20)


async def test_signed_copies_are_never_rendered_on_the_loop(store: Store, sink: SmtpSink) -> None:
    add_post_rows(store, 5)
    renderer = CountingRenderer()
    await run(worker(store, sink, renderer, connections=1,
                     sign=lambda data: b"X-Signed: 1\r\n" + data))
    assert renderer.calls == ["call"] * 5
    assert all(m.data.startswith(b"X-Signed: 1\r\n") for m in sink.messages)


class SlowRenderer(CountingRenderer):
    """A cache miss takes a while, so every sender misses the post together."""

    def __call__(self, pk: int, rcpt: str) -> bytes:
        import time

        time.sleep(0.1)
        return super().__call__(pk, rcpt)


class WarmingRenderer(CountingRenderer):
    """A renderer that prepares posts ahead when the worker claims their rows."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.warmed: list[list[int]] = []

    def warm(self, message_pks: list[int]) -> None:
        import threading

        assert threading.get_ident() != self.loop_thread
        self.warmed.append(list(message_pks))
        if self.fail:
            raise RuntimeError("the store is gone")
        self.prepared = True


async def test_claimed_posts_are_prepared_in_the_claim_s_thread(store: Store,
                                                                sink: SmtpSink) -> None:
    """The claim's thread prepares the post, once: every copy is a cache hit, no hop."""
    add_post_rows(store, 20)
    renderer = WarmingRenderer()
    await run(worker(store, sink, renderer, connections=4))
    assert renderer.warmed[0] == [1] and all(w == [1] for w in renderer.warmed)
    assert renderer.calls == ["cached-hit"] * 20
    assert all_copies_sent(sink, 20)


async def test_a_failed_warming_loses_no_claimed_row(store: Store, sink: SmtpSink) -> None:
    add_post_rows(store, 5)
    renderer = WarmingRenderer(fail=True)
    await run(worker(store, sink, renderer, connections=1))
    assert renderer.warmed and renderer.calls == ["call"] + ["cached-hit"] * 4
    assert all_copies_sent(sink, 5)


async def test_senders_missing_the_same_post_hop_to_a_thread_once(store: Store,
                                                                 sink: SmtpSink) -> None:
    """With 4 connections the first 4 copies of a post all missed the cache: 4 thread hops
    (each a few dozen µs of the loop's CPU) where one preparation serves them all."""
    add_post_rows(store, 20)
    renderer = SlowRenderer()
    await run(worker(store, sink, renderer, connections=4))
    assert renderer.calls == ["call"] + ["cached-hit"] * 19
    assert all_copies_sent(sink, 20)
