"""The smarthost refuses a copy (5xx) or a 4xx finally gives up: the member's bounce score moves
exactly as a DSN's would (listserv/smtp_bounces.py). Real SMTP on loopback to a sink that
answers 550/554/450 for chosen recipients, the outbox worker on a fixed clock, each backend."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from listserv import config as config_mod
from listserv import smtp_bounces
from listserv.addresses import verp_sender
from listserv.config import Config
from listserv.lists import find
from listserv.models import AuditEntry, Bounce, Message, Outbox, Subscription
from listserv.outbox import OutboxWorker, Undelivered, enqueue_notice
from listserv.store import Store
from listserv.subscriptions import find_subscription
from listserv.transports import SmtpTransport
from tests.harness import DOMAIN, make_list, parse, write_config
from tests.smtpsink import DROP, SmtpSink

MOD = "mod@example.net"
ALICE, CAROL, DAVE = "alice@example.org", "carol@example.com", "dave@example.net"
STRANGER = "stranger@example.org"
# Ahead of the real clock: the notices scoring queues are due at the real now (the default).
T0 = datetime(2030, 12, 2, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def cfg(tmp_path: Path, db_url: str, sink: SmtpSink) -> Config:
    return config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})


@pytest.fixture
def lst(store: Store) -> Iterator[None]:
    make_list(store, "pub", moderators=(MOD,), members=(ALICE, CAROL, DAVE))
    yield


def post(store: Store, *recipients: str, at: datetime = T0, number: int = 1) -> None:
    """One post's member copies, as the fan-out queues them (VERP sender, no payload)."""
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None
        msg = Message(list_id=ml.id, message_id=f"<p{number}@example.org>",
                      raw=b"Subject: news\r\n\r\nhello\r\n")
        s.add(msg)
        s.flush()
        for r in recipients:
            s.add(Outbox(list_id=ml.id, message_pk=msg.id, recipient=r,
                         sender=verp_sender("pub", DOMAIN, r), created_at=at,
                         next_attempt_at=at))


def worker(store: Store, cfg: Config, sink: SmtpSink, clock: Clock,
           hook: Callable[[Session, Any, datetime], object] | None = None) -> OutboxWorker:
    return OutboxWorker(store, lambda: SmtpTransport(sink.host, sink.port, timeout=5),
                        lambda pk, rcpt: b"Subject: news\r\nTo: " + rcpt.encode()
                        + b"\r\n\r\nhi\r\n",
                        connections=2, poll_interval=0.05, backoff=lambda attempts: 0.0,
                        clock=clock, give_up_after=timedelta(days=5),
                        on_undelivered=hook or partial(smtp_bounces.score, cfg))


async def deliver(store: Store, cfg: Config, sink: SmtpSink, clock: Clock,
                  hook: Callable[[Session, Any, datetime], object] | None = None) -> None:
    w = worker(store, cfg, sink, clock, hook)
    await w.start()
    try:
        await w.drain(10)
    finally:
        await w.stop()


def member(store: Store, email: str) -> Subscription:
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, email)
        assert sub is not None
        return sub


def set_list(store: Store, **settings: object) -> None:
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None
        for k, v in settings.items():
            setattr(ml, k, v)
        s.add(ml)


def bounces(store: Store) -> list[Bounce]:
    with store.session() as s:
        return list(s.exec(select(Bounce).order_by(Bounce.id)).all())  # type: ignore[arg-type]


def subjects_to(sink: SmtpSink, rcpt: str) -> list[str]:
    return [str(parse(m.data)["Subject"]) for m in sink.messages if m.rcpt_tos == (rcpt,)]


async def test_a_5xx_counts_like_a_dsn_and_a_policy_refusal_tells_the_owners(
        store: Store, cfg: Config, sink: SmtpSink, lst: None) -> None:
    sink.rcpt_replies[ALICE] = 550  # 5.1.1 No such user
    sink.rcpt_replies[CAROL] = 554  # 5.7.1 Rejected
    post(store, ALICE, CAROL, DAVE)
    await deliver(store, cfg, sink, Clock())
    alice, carol, dave = member(store, ALICE), member(store, CAROL), member(store, DAVE)
    assert (alice.bounce_score, alice.last_bounce_at) == (1.0, T0)
    assert (carol.bounce_score, carol.last_bounce_at) == (0.0, None)  # policy: not counted
    assert dave.bounce_score == 0.0
    rows = {b.address: b for b in bounces(store)}
    assert set(rows) == {ALICE, CAROL}
    assert (rows[ALICE].status, rows[ALICE].counted, rows[ALICE].source) == ("5.1.1", 1.0, "smtp")
    assert rows[ALICE].diagnostic == "550 5.1.1 No such user"
    assert (rows[CAROL].status, rows[CAROL].counted) == ("5.7.1", 0.0)
    assert subjects_to(sink, MOD) == ["pub: mail refused by policy (5.7.1)"]


class Crash(BaseException):
    """The process dying: nothing after it runs (not an Exception, which the worker catches)."""


async def test_a_crash_right_after_the_write_back_loses_no_count(
        store: Store, cfg: Config, sink: SmtpSink, lst: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker dies as soon as the write-back that records a refused copy has committed:
    the member's count is in that commit (it used to come after, and was lost)."""
    sink.rcpt_replies[ALICE] = 550
    post(store, ALICE, DAVE)
    written = threading.Event()
    write = OutboxWorker._write

    def write_then_die(self: OutboxWorker, done: Any, released: Any) -> Any:
        out = write(self, done, released)
        if out:
            written.set()
            raise Crash
        return out

    monkeypatch.setattr(OutboxWorker, "_write", write_then_die)
    w = worker(store, cfg, sink, Clock())
    await w.start()
    try:
        for _ in range(200):
            if written.is_set():
                break
            await asyncio.sleep(0.05)
        assert written.is_set()
    finally:
        with contextlib.suppress(Crash):
            await w.stop()
    [row] = bounces(store)
    assert (row.address, row.counted) == (ALICE, 1.0)
    assert member(store, ALICE).bounce_score == 1.0


async def test_a_scoring_failure_keeps_the_outcomes_and_nothing_of_the_scoring(
        store: Store, cfg: Config, sink: SmtpSink, lst: None) -> None:
    """Scoring runs in a savepoint of the write-back: when it raises, what it wrote is rolled
    back, the outcomes are written once all the same, and nothing is sent again."""
    sink.rcpt_replies[ALICE] = 550
    post(store, ALICE, DAVE)

    def score_then_fail(session: Session, undelivered: Any, now: datetime) -> None:
        smtp_bounces.score(cfg, session, undelivered, now)
        session.flush()
        raise RuntimeError("scoring broke")

    await deliver(store, cfg, sink, Clock(), hook=score_then_fail)
    [row] = bounces(store)
    assert (row.address, row.counted) == (ALICE, 0.0)  # recorded, its count rolled back
    assert member(store, ALICE).bounce_score == 0.0
    with store.session() as s:
        states = sorted(o.state for o in s.exec(select(Outbox)))
    assert states == ["bounced", "sent"]
    assert [m.rcpt_tos for m in sink.messages] == [(DAVE,)]


async def test_policy_refusals_in_one_batch_tell_the_owners_once(
        store: Store, cfg: Config, sink: SmtpSink, lst: None) -> None:
    for who in (ALICE, CAROL, DAVE):
        sink.rcpt_replies[who] = 554
    post(store, ALICE, CAROL, DAVE)
    clock = Clock()
    await deliver(store, cfg, sink, clock)
    clock.now += timedelta(hours=2)
    post(store, ALICE, CAROL, DAVE, at=clock.now, number=2)
    await deliver(store, cfg, sink, clock)
    assert len(bounces(store)) == 6
    assert subjects_to(sink, MOD) == ["pub: mail refused by policy (5.7.1)"]


async def test_one_count_a_day_then_the_threshold_disables(
        store: Store, cfg: Config, sink: SmtpSink, lst: None) -> None:
    set_list(store, bounce_score_threshold=2)
    sink.rcpt_replies[ALICE] = 550
    clock = Clock()
    post(store, ALICE, DAVE)
    post(store, ALICE, DAVE, number=2)
    await deliver(store, cfg, sink, clock)
    assert member(store, ALICE).bounce_score == 1.0  # two copies bounced today: one count
    assert sorted(b.counted for b in bounces(store)) == [0.0, 1.0]

    clock.now += timedelta(days=1)
    post(store, ALICE, DAVE, at=clock.now, number=3)
    await deliver(store, cfg, sink, clock)
    alice = member(store, ALICE)
    assert (alice.bounce_score, alice.delivery_disabled_at) == (2.0, clock.now)
    with store.session() as s:
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "delivery-disabled")).all()
    assert entry.target == ALICE and "5.1.1" in entry.detail
    # The notice telling her is refused too (her address is gone): recorded, never counted.
    notice = [b for b in bounces(store) if b.at == clock.now and b.counted == 0.0]
    assert len(notice) == 1 and member(store, ALICE).bounce_score == 2.0


async def test_a_4xx_that_gives_up_counts_half_and_one_still_trying_nothing(
        store: Store, cfg: Config, sink: SmtpSink, lst: None) -> None:
    sink.rcpt_replies[ALICE] = 450  # 4.2.0 Mailbox busy
    sink.rcpt_replies[CAROL] = 451
    sink.rcpt_replies[DAVE] = DROP  # no reply at all: our side's trouble, not Dave's
    clock = Clock(T0 + timedelta(days=5, minutes=1))
    post(store, ALICE, DAVE, at=T0)  # queued five days ago: this try is the last
    post(store, CAROL, at=clock.now - timedelta(hours=1), number=2)  # young: retried later
    await deliver_once(store, cfg, sink, clock)
    with store.session() as s:
        states = {r.recipient: r.state for r in s.exec(select(Outbox))}
    assert states == {ALICE: "failed", DAVE: "failed", CAROL: "pending"}
    alice = member(store, ALICE)
    assert (alice.bounce_score, alice.last_bounce_at) == (0.5, clock.now)
    [row] = bounces(store)
    assert (row.address, row.status, row.counted, row.diagnostic) == (
        ALICE, "4.2.0", 0.5, "450 4.2.0 Mailbox busy")
    assert member(store, CAROL).bounce_score == member(store, DAVE).bounce_score == 0.0


async def deliver_once(store: Store, cfg: Config, sink: SmtpSink, clock: Clock) -> None:
    """Run the worker until the rows due now were tried once (a 4xx row is then not due:
    its back-off is an hour)."""
    w = OutboxWorker(store, lambda: SmtpTransport(sink.host, sink.port, timeout=5),
                     lambda pk, rcpt: b"Subject: news\r\n\r\nhi\r\n",
                     connections=2, poll_interval=0.05, backoff=lambda attempts: 3600.0,
                     clock=clock, give_up_after=timedelta(days=5),
                     on_undelivered=partial(smtp_bounces.score, cfg))
    await w.start()
    try:
        await w.drain(10)
    finally:
        await w.stop()


async def test_notices_and_strangers_are_recorded_not_counted(
        store: Store, cfg: Config, sink: SmtpSink, lst: None) -> None:
    sink.rcpt_replies[ALICE] = 550
    sink.rcpt_replies[STRANGER] = 550
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None
        for who in (ALICE, STRANGER):  # a reply to a command, a confirmation…
            enqueue_notice(s, list_id=ml.id, recipient=who, sender=f"pub-bounces@{DOMAIN}",
                           payload=b"Subject: notice\r\n\r\nhi\r\n")
    post(store, STRANGER)  # not a member (say, unsubscribed since the fan-out)
    await deliver(store, cfg, sink, Clock())
    assert sorted(b.address for b in bounces(store)) == [ALICE, STRANGER, STRANGER]
    assert {b.counted for b in bounces(store)} == {0.0}
    assert member(store, ALICE).bounce_score == 0.0


async def test_a_refused_probe_disables(store: Store, cfg: Config, sink: SmtpSink,
                                        lst: None) -> None:
    set_list(store, bounce_score_threshold=1, bounce_probe=True)
    sink.rcpt_replies[ALICE] = 550
    post(store, ALICE, DAVE)
    clock = Clock()
    await deliver(store, cfg, sink, clock)  # the copy bounces, a probe is sent, and refused
    alice = member(store, ALICE)
    assert alice.delivery_disabled_at == T0 and alice.probe_token == ""
    assert [b.source for b in bounces(store)][:2] == ["smtp", "probe"]


def test_processes_scoring_policy_refusals_at_once_tell_the_owners_once(
        store: Store, cfg: Config, lst: None) -> None:
    """Two processes (here two threads with their own transactions) score a 5.7.1 refusal for
    the same list at the same time: the owners get one notice. Looking for an earlier 5.7 bounce
    could not see the other's uncommitted one, so both used to tell them (PostgreSQL)."""
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None and ml.id is not None
        list_id = ml.id
    a_scored, b_started = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def refused(who: str, before: threading.Event | None, after: threading.Event,
                hold: float) -> None:
        try:
            if before is not None:
                assert before.wait(10)
            with store.session() as s:
                if before is not None:
                    after.set()  # B: now scoring while A has not committed
                row = Bounce(list_id=list_id, address=who, at=T0, status="5.7.1",
                             diagnostic="554 5.7.1 Rejected", source="smtp")
                s.add(row)
                s.flush()
                assert row.id is not None
                smtp_bounces.score(cfg, s, [Undelivered(
                    row.id, list_id, who, verp_sender("pub", DOMAIN, who), True, "5.7.1",
                    "554 5.7.1 Rejected")], T0)
                if before is None:
                    after.set()  # A: scored, and holds its transaction open a while
                    b_started.wait(10)
                    time.sleep(hold)
        except BaseException as e:  # reported by the assert below
            errors.append(e)
            a_scored.set()
            b_started.set()

    threads = [threading.Thread(target=refused, args=(CAROL, None, a_scored, 0.5)),
               threading.Thread(target=refused, args=(DAVE, a_scored, b_started, 0.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with store.session() as s:
        notices = [o for o in s.exec(select(Outbox).where(Outbox.recipient == MOD))
                   if b"mail refused by policy" in (o.payload or b"")]
    assert len(notices) == 1
