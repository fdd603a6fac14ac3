"""Delivery that survives trouble: smarthost refusals, dropped connections, a killed server."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import Bounce, Outbox, utcnow
from listserv.store import Store
from tests.harness import DOMAIN, Running, mail, make_list, running, wait_until
from tests.smtpsink import SmtpSink

MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk", "cat@acme.example")


@pytest.fixture
def server(store: Store, config_path: Path) -> Iterator[Running]:
    make_list(store, "demo", members=MEMBERS)
    with running(config_mod.load(config_path, env={}), store) as srv:
        assert srv.app.worker is not None
        srv.app.worker.backoff = lambda attempts: 0.05  # retry at once in tests
        yield srv


def post(server: Running, subject: str = "Hello") -> None:
    server.send(MEMBERS[0], f"demo@{DOMAIN}", mail(MEMBERS[0], f"demo@{DOMAIN}", subject))


def test_451_then_250_delivers_once(server: Running, sink: SmtpSink, store: Store) -> None:
    sink.script_data(451, 451)
    post(server)
    wait_until(lambda: len(sink.messages) == 3, what="three deliveries")
    server.drain()
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(MEMBERS)
    with store.session() as s:
        rows = s.exec(select(Outbox)).all()
    assert {r.state for r in rows} == {"sent"}
    assert sum(r.attempts for r in rows) == 5  # two 451s, then three successes


def test_5xx_is_a_bounce(server: Running, sink: SmtpSink, store: Store) -> None:
    sink.rcpt_replies["bob@district.gov.uk"] = 550
    post(server)
    server.drain()
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["ann@council.gov.uk",
                                                            "cat@acme.example"]
    with store.session() as s:
        bounce = s.exec(select(Bounce)).one()
        assert bounce.address == "bob@district.gov.uk" and bounce.status == "5.1.1"
        assert bounce.diagnostic.startswith("550") and bounce.counted == 1.0  # as a DSN's


def test_dropped_connection_is_retried(server: Running, sink: SmtpSink) -> None:
    from tests.smtpsink import DROP

    sink.script_data(DROP)
    post(server)
    wait_until(lambda: len(sink.messages) == 3, what="three deliveries after a drop")
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(MEMBERS)


def test_connections_are_reused(server: Running, sink: SmtpSink) -> None:
    for i in range(5):
        post(server, f"Post {i}")
    server.drain()
    assert len(sink.messages) == 15
    assert len(sink.sessions) <= 2  # [delivery] connections = 2 in the test config


# --- a real process, killed with SIGKILL -----------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        env = {**os.environ, "COMMONROOM_SERVER_SMTP_PORT": str(port)}
        self.log = self.config_path.parent / "serve.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "listserv", "--config", str(self.config_path), "serve"],
                env=env, stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, 20, "the server to listen")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def outbox_states(store: Store) -> list[str]:
    with store.session() as s:
        return sorted(r.state for r in s.exec(select(Outbox)))


def outbox_rows(store: Store) -> list[tuple[str, int, object]]:
    with store.session() as s:
        return sorted((r.state, r.attempts, r.next_attempt_at) for r in s.exec(select(Outbox)))


def test_killed_in_flight_delivers_at_once_after_restart(store: Store, config_path: Path,
                                                         sink: SmtpSink) -> None:
    """Accepted means durable: killed while the first copies are with the smarthost, the server
    sends every copy at once after a restart (rows that were in flight are due at once)."""
    make_list(store, "demo", members=MEMBERS)
    port = free_port()
    proc = Process(config_path)
    sink.delay = 5.0  # the first deliveries are still in flight when the server dies
    proc.start(port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(MEMBERS[0], f"demo@{DOMAIN}",
                            mail(MEMBERS[0], f"demo@{DOMAIN}", "Survives a crash"))
        wait_until(lambda: "sending" in outbox_states(store), what="a delivery in flight")
        proc.kill()
        sink.delay = 0.0
        accepted_before = len(sink.messages)
        proc.start(port)
        # "At once": well inside the 30-second back-off and any lease.
        wait_until(lambda: len({m.rcpt_tos for m in sink.messages}) == 3, 10,
                   "every member's copy after the restart")
        wait_until(lambda: outbox_states(store) == ["sent"] * 3, 10, "the outbox to settle")
        # At-least-once: duplicates only for what was in flight when the process died.
        assert len(sink.messages) - accepted_before <= 3
        assert len(sink.messages) <= 3 + 3
    finally:
        proc.stop()


def test_killed_while_backing_off_keeps_the_back_off_after_restart(
        store: Store, config_path: Path, sink: SmtpSink) -> None:
    """Issue 7.15: a restart does not make backed-off rows due at once (that would burn their
    retries); they keep their time and go out when it comes."""
    make_list(store, "demo", members=MEMBERS)
    port = free_port()
    proc = Process(config_path)
    sink.script_data(*[451] * 10)  # every try is refused and put off by the back-off
    proc.start(port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(MEMBERS[0], f"demo@{DOMAIN}",
                            mail(MEMBERS[0], f"demo@{DOMAIN}", "Survives a crash"))
        wait_until(lambda: [(st, n) for st, n, _ in outbox_rows(store)] == [("pending", 1)] * 3,
                   what="every copy refused once and backed off")
        before = outbox_rows(store)
        proc.kill()
        with sink._lock:
            sink._data_script.clear()  # the smarthost accepts again
        tries = sink.data_commands
        proc.start(port)
        time.sleep(3)  # several worker polls
        assert sink.data_commands == tries and outbox_rows(store) == before
        # The back-off runs out (made so here rather than waited for): all go out, once each.
        with store.session() as s:
            for row in s.exec(select(Outbox)):
                row.next_attempt_at = utcnow()
                s.add(row)
        wait_until(lambda: outbox_states(store) == ["sent"] * 3, 10, "the outbox to settle")
        assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(MEMBERS)
    finally:
        proc.stop()
