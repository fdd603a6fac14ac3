"""The SMTP door in its own process (``[server] smtp_process = true``): the same answers, the
rows reach the parent's pipeline, and a dead door is started again, ever later while it keeps
failing."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from listserv import config as config_mod
from listserv.door import DoorProcess
from listserv.models import Message, MessageStatus
from listserv.store import Store, StoreSettings
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
MEMBERS = ("ann@example.org", "bob@example.org")


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}",
                        server={"smtp_process": True})
    cfg = config_mod.load(path, env={})
    assert cfg.server.smtp_process
    with running(cfg, store) as srv:
        yield srv


def accepted(store: Store) -> int:
    with store.read_session() as s:
        return int(s.exec(select(func.count()).select_from(Message).where(
            Message.status == MessageStatus.ACCEPTED.value)).one())


def test_posts_through_the_smtp_process_are_handled_and_delivered(
        server: Running, store: Store, sink: SmtpSink) -> None:
    assert server.app.door is not None and server.app.door.alive
    assert server.app.server is None, "no SMTP server in the parent"
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        for n in range(10):
            client.sendmail(MEMBERS[0], [POST], mail(MEMBERS[0], POST, f"Post {n}"))
        code, _ = client.docmd("RCPT TO:<nobody@lists.example.org>")
        assert code == 503  # no MAIL yet: the door answers like the in-process one
        client.mail(MEMBERS[0])
        code, text = client.rcpt(f"nosuchlist@{DOMAIN}")
        assert code == 550 and b"no such list" in text
        client.rset()
    server.settle()
    assert accepted(store) == 10
    wait_until(lambda: len(sink.messages) == 10 * len(MEMBERS), what="the copies")


def test_a_killed_smtp_process_is_started_again_on_the_same_port(
        server: Running, store: Store) -> None:
    door = server.app.door
    assert door is not None
    port = server.port
    os.kill(door._process.pid, signal.SIGKILL)
    wait_until(lambda: door.restarts == 1 and door.alive, timeout=60, what="a new SMTP process")
    assert door.port == port
    server.send(MEMBERS[1], POST, mail(MEMBERS[1], POST, "After the restart"))
    assert accepted(store) == 1


async def test_an_smtp_process_that_cannot_start_is_tried_ever_later_and_stop_does_not_wait(
        store: Store, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Its port taken once it died (by another program, say): each start fails."""
    path = write_config(tmp_path, db_url, "127.0.0.1:25", server={"smtp_process": True})
    door = DoorProcess(config_mod.load(path, env={}), store.settings, 0, lambda *_: None)
    port = await door.start()
    with socket.socket() as squatter:

        def take_the_port() -> None:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()

        await check_restarts_back_off(door, "the SMTP process", take_the_port, monkeypatch,
                                      caplog)


async def test_stop_while_an_smtp_process_is_starting_again_leaves_no_child(
        store: Store, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, db_url, "127.0.0.1:25", server={"smtp_process": True})
    door = DoorProcess(config_mod.load(path, env={}), store.settings, 0, lambda *_: None)
    await door.start()
    await check_stop_during_a_restart_leaves_no_child(door, monkeypatch)


def test_the_health_page_says_when_the_smtp_process_is_down(server: Running) -> None:
    assert server.app._smtp_problem() is None
    door = server.app.door
    assert door is not None
    door._stopping = True  # no restart: see the problem reported
    os.kill(door._process.pid, signal.SIGKILL)
    wait_until(lambda: not door.alive, what="the process gone")
    assert server.app._smtp_problem() == "the SMTP process is not running"


def test_the_smtp_process_opens_the_store_the_app_was_given(
        store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    """Not a store from the config's defaults: the App's URL (here not the config's, which
    names an empty file) and its settings (``synchronous``, as bench/ingest.py sets it)."""
    make_list(store, "demo", members=MEMBERS, max_posts_per_hour=0)
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'not-this.db'}",
                        f"127.0.0.1:{sink.port}",
                        server={"smtp_process": True})
    given = Store(db_url, synchronous="NORMAL")
    try:
        with running(config_mod.load(path, env={}), given) as server:
            assert server.app.door is not None
            assert server.app.door.spec().store == StoreSettings(given.url, "NORMAL")
            server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Hello"))
            assert accepted(store) == 1
            wait_until(lambda: len(sink.messages) == len(MEMBERS), what="the copies")
    finally:
        given.dispose()
