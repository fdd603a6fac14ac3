"""Delivery in its own process (``[server] delivery_process = true``): posts reach the
smarthost from the child, a dead child is started again and sends what the dead one held, the
health page says when it is down, and stopping ``serve`` stops it with nothing left claimed."""

from __future__ import annotations

import os
import signal
import smtplib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlmodel import select as orm_select

from listserv import config as config_mod
from listserv.backoff import RestartPolicy
from listserv.courier import CourierProcess
from listserv.lists import find
from listserv.models import Bounce, Outbox, OutboxState
from listserv.store import Store, StoreSettings
from listserv.subscriptions import find_subscription
from tests.harness import (
    DOMAIN,
    Running,
    check_restarts_back_off,
    check_stop_during_a_restart_leaves_no_child,
    mail,
    make_list,
    running,
    wait_until,
    write_config,
)
from tests.smtpsink import SmtpSink

POST = f"demo@{DOMAIN}"
MEMBERS = ("ann@example.org", "bob@example.org", "cy@example.org")
OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}",
                        server={"delivery_process": True})
    cfg = config_mod.load(path, env={})
    assert cfg.server.delivery_process
    with running(cfg, store) as srv:
        yield srv


def courier_of(server: Running) -> CourierProcess:
    courier = server.app.courier
    assert courier is not None
    return courier


def in_state(store: Store, state: OutboxState) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(OUTBOX)
                                .where(OUTBOX.c.state == state.value)).scalar_one())


def test_posts_are_sent_by_the_delivery_process(server: Running, sink: SmtpSink) -> None:
    courier = courier_of(server)
    assert courier.alive and server.app.worker is None, "no outbox worker in the parent"
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        for n in range(5):
            client.sendmail(MEMBERS[0], [POST], mail(MEMBERS[0], POST, f"Post {n}"))
    server.settle()
    wait_until(lambda: len(sink.messages) == 5 * len(MEMBERS), what="every copy")
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(MEMBERS * 5)
    # The child reports what it wrote back, for /metrics.
    wait_until(lambda: courier.counts.get("sent") == 5 * len(MEMBERS), what="the counts")
    assert server.app._delivery_counts()["sent"] == 5 * len(MEMBERS)


def test_a_killed_delivery_process_is_started_again_and_sends_what_it_held(
        server: Running, store: Store, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    courier = courier_of(server)
    # time to post while it is down
    monkeypatch.setattr(courier, "restart_policy", RestartPolicy(base=3.0))
    dead_id = courier.worker_id
    os.kill(courier.pid or 0, signal.SIGKILL)
    wait_until(lambda: not courier.alive, what="the process gone")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.sendmail(MEMBERS[1], [POST], mail(MEMBERS[1], POST, "While it was down"))
    server.settle()
    # As if the dead child had claimed one copy and died before sending it.
    with store.engine.begin() as conn:
        held = conn.execute(update(OUTBOX).where(OUTBOX.c.recipient == MEMBERS[2])
                            .values(state=OutboxState.SENDING.value, claimed_by=dead_id))
        assert held.rowcount == 1
    wait_until(lambda: courier.restarts == 1 and courier.alive, timeout=60,
               what="a new delivery process")
    assert courier.worker_id != dead_id
    wait_until(lambda: len(sink.messages) == len(MEMBERS), timeout=30, what="every copy")
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(MEMBERS)
    wait_until(lambda: in_state(store, OutboxState.SENT) == len(MEMBERS), what="written back")


async def test_a_delivery_process_that_cannot_start_is_tried_ever_later_and_stop_does_not_wait(
        store: Store, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Its store without the schema once it died (a store restored wrong, say): each start
    fails."""
    path = write_config(tmp_path, db_url, "127.0.0.1:25", server={"delivery_process": True})
    courier = CourierProcess(config_mod.load(path, env={}), store.settings)
    await courier.start()

    def no_schema() -> None:
        courier.store = StoreSettings(f"sqlite:///{tmp_path / 'empty.db'}")

    await check_restarts_back_off(courier, "the delivery process", no_schema, monkeypatch,
                                  caplog)


async def test_stop_while_a_delivery_process_is_starting_again_leaves_no_child(
        store: Store, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, db_url, "127.0.0.1:25", server={"delivery_process": True})
    courier = CourierProcess(config_mod.load(path, env={}), store.settings)
    await courier.start()
    await check_stop_during_a_restart_leaves_no_child(courier, monkeypatch)


def test_the_health_page_says_when_the_delivery_process_is_down(server: Running) -> None:
    health = httpx.get(server.web_url + "/healthz")
    assert health.status_code == 200 and "delivery: ok" in health.text.splitlines()
    courier = courier_of(server)
    courier._stopping = True  # no restart: see the problem reported
    os.kill(courier.pid or 0, signal.SIGKILL)
    wait_until(lambda: not courier.alive, what="the process gone")
    health = httpx.get(server.web_url + "/healthz")
    assert health.status_code == 503
    assert "delivery: the delivery process is not running" in health.text.splitlines()


def test_stopping_serve_stops_the_delivery_process_with_nothing_claimed(
        store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}",
                        server={"delivery_process": True})
    with running(config_mod.load(path, env={}), store) as server:
        courier = courier_of(server)
        process = courier._process
        server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Before the stop"))
    assert not process.is_alive() and process.exitcode == 0
    assert in_state(store, OutboxState.SENDING) == 0
    assert in_state(store, OutboxState.SENT) + in_state(store, OutboxState.PENDING) == len(MEMBERS)


def test_with_the_smtp_process_too_serve_is_three_processes(
        store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
    path.write_text(path.read_text().replace(
        "[server]\n", "[server]\nsmtp_process = true\ndelivery_process = true\n"))
    with running(config_mod.load(path, env={}), store) as server:
        assert server.app.door is not None and server.app.door.alive
        assert courier_of(server).alive and server.app.worker is None
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            for n in range(3):
                client.sendmail(MEMBERS[0], [POST], mail(MEMBERS[0], POST, f"Post {n}"))
        server.settle()
        wait_until(lambda: len(sink.messages) == 3 * len(MEMBERS), what="every copy")


def test_a_refused_copy_is_recorded_and_scored_by_the_delivery_process(
        server: Running, store: Store, sink: SmtpSink) -> None:
    sink.rcpt_replies[MEMBERS[1]] = 550  # 5.1.1 No such user
    server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "One refused"))
    wait_until(lambda: in_state(store, OutboxState.BOUNCED) == 1, timeout=30,
               what="the refused copy written back")
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, MEMBERS[1])
        assert sub is not None and sub.bounce_score == 1.0  # scored as a DSN would be
        assert [b.address for b in s.exec(orm_select(Bounce))] == [MEMBERS[1]]
    wait_until(lambda: courier_of(server).counts.get("bounced") == 1, what="the counts")


def test_the_delivery_process_opens_the_store_the_app_was_given(
        store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    """Not a store from the config's defaults: the App's URL (here not the config's, which
    names an empty file) and its settings (``synchronous``, as bench/ingest.py sets it)."""
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'not-this.db'}",
                        f"127.0.0.1:{sink.port}",
                        server={"delivery_process": True})
    given = Store(db_url, synchronous="NORMAL")
    try:
        with running(config_mod.load(path, env={}), given) as server:
            assert courier_of(server).spec().store == StoreSettings(given.url, "NORMAL")
            server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Hello"))
            wait_until(lambda: len(sink.messages) == len(MEMBERS), what="every copy")
    finally:
        given.dispose()
