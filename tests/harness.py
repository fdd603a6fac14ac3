"""The whole server on loopback for end-to-end tests: ``App`` in a thread with its own loop.

Tests stay synchronous: they talk to the server with smtplib (a real SMTP client), read what the
smarthost received from an ``SmtpSink`` (a real SMTP server), and run CLI commands through
click's runner against the same configuration file. Nothing here is a fake of the product.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import smtplib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from listserv.cli import main as cli_main
from listserv.config import Config
from listserv.models import DeliveryMode, MailingList, Role
from listserv.serve import App
from listserv.store import Store
from listserv.subscriptions import add_member

DOMAIN = "lists.example.org"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value).replace("'", '"')


def write_config(tmp_path: Path, db_url: str, smarthost: str, *,
                 server: Mapping[str, Any] | None = None, **delivery: Any) -> Path:
    """A config for tests: ``server`` keys go in [server] (``delivery_process=True``), the
    keyword arguments in [delivery]."""
    lines = ["[server]", f'domain = "{DOMAIN}"', "smtp_port = 8025",
             'web_base_url = "https://lists.example.org"', "max_message_bytes = 200000",
             *(f"{k} = {_toml(v)}" for k, v in (server or {}).items()),
             "[database]", f'url = "{db_url}"',
             "[delivery]", f'smarthost = "{smarthost}"', "connections = 2",
             'maildir = "var/outbox"', "dmarc_timeout = 0.2"]
    lines += [f"{k} = {_toml(v)}" for k, v in delivery.items()]
    path = tmp_path / "commonroom.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Running:
    """An ``App`` serving SMTP and the web pages on free loopback ports until ``stop``."""

    def __init__(self, cfg: Config, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.app = App(cfg, store, smtp_port=0, web_port=0)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> Running:
        self._thread.start()
        self.call(self.app.start())
        return self

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.call(self.app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    @property
    def port(self) -> int:
        return self.app.port

    @property
    def web_url(self) -> str:
        """``http://127.0.0.1:PORT`` where this server's pages answer."""
        return self.app.web_url

    def send(self, mail_from: str, rcpt: str | list[str], data: bytes | str) -> dict[str, Any]:
        if isinstance(data, str):
            data = data.replace("\n", "\r\n").encode()
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            refused = client.sendmail(mail_from, rcpt, data)
        self.settle()
        return refused

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the pipeline has handled every accepted message (a 250 means queued)."""
        self.call(self.app.settle(timeout), timeout + 5)

    def drain(self, timeout: float = 15.0) -> None:
        """Wait until the outbox has nothing left to send now."""
        assert self.app.worker is not None
        self.call(self.app.worker.drain(timeout), timeout + 5)


@contextmanager
def running(cfg: Config, store: Store) -> Iterator[Running]:
    server = Running(cfg, store).start()
    try:
        yield server
    finally:
        server.stop()


def cli(config_path: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli_main, ["--config", str(config_path), *args],
                                catch_exceptions=False)
    return result


def bare_list(store: Store, name: str = "localgov") -> int:
    """A list with nothing in it (threading's tests): its id."""
    with store.session() as s:
        ml = MailingList(name=name)
        s.add(ml)
        s.flush()
        assert ml.id is not None
        return ml.id


def make_list(store: Store, name: str = "demo", *, moderators: tuple[str, ...] = (),
              members: tuple[str, ...] = (), description: str = "Demo list",
              **settings: Any) -> None:
    with store.session() as s:
        ml = MailingList(name=name, description=description, **settings)
        s.add(ml)
        s.flush()
        for m in moderators:
            add_member(s, ml, m, role=Role.MODERATOR, verified=True)
        for m in members:
            add_member(s, ml, m, mode=DeliveryMode.EACH, verified=True)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    """``wait_until`` for a test on the loop it waits on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def check_restarts_back_off(process: Any, what: str, break_it: Callable[[], None],
                                  monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture) -> None:
    """For ``courier.CourierProcess`` and ``door.DoorProcess``, started: kill the child and
    ``break_it`` once it is gone, so that each start after fails. The waits before them double
    from the policy's base, the log says so, and ``stop()`` during a wait returns at once.
    ``what``: the process's name in the log ("the SMTP process")."""
    from listserv.backoff import RestartPolicy

    caplog.set_level(logging.ERROR)
    monkeypatch.setattr(process, "restart_policy", RestartPolicy(base=0.2, cap=10.0))
    tries: list[tuple[float, float]] = []  # (began, ended) of each start after the first
    start = process.start

    async def timed_start() -> Any:
        began = time.monotonic()
        try:
            return await start()
        finally:
            tries.append((began, time.monotonic()))

    monkeypatch.setattr(process, "start", timed_start)
    try:
        os.kill(process._process.pid, signal.SIGKILL)
        killed = time.monotonic()
        await until(lambda: not process.alive, "the process gone")
        break_it()
        await until(lambda: len(tries) == 1, "the first start again")
        # Its failure has set the next wait (0.4 s); the one after is long, for stop() to cut.
        process.restart_policy = RestartPolicy(base=60.0, cap=60.0)
        await until(lambda: len(tries) == 2, "the second start again", timeout=20)
        await asyncio.sleep(0.2)  # well into the 60 s wait
        stopping = time.monotonic()
        await asyncio.wait_for(process.stop(), 10.0)
        assert time.monotonic() - stopping < 2.0, "stop() waited out the restart's wait"
        assert tries[0][0] - killed >= 0.2
        assert tries[1][0] - tries[0][1] >= 0.4, "the second wait is twice the first"
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(what)]
        assert len(said) == 3, said
        assert said[0].startswith(f"{what} stopped after") and "(exit code -9)" in said[0]
        assert said[0].endswith("starting it again in 0.2 s (attempt 1)")
        assert said[1].startswith(f"{what} cannot start again: ")
        assert said[1].endswith("trying again in 0.4 s (attempt 2)")
        assert said[2].endswith("trying again in 60 s (attempt 3)")
        assert process.restarts == 0 and not process.alive
    finally:
        await process.stop()  # a second time does nothing; after a failure, no child left


def parse(data: bytes) -> Message:
    return message_from_bytes(data)


def mail(sender: str, to: str, subject: str, body: str = "Hello.\n", *,
         headers: dict[str, str] | None = None, message_id: str | None = None) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             "Date: Wed, 25 Nov 2026 10:00:00 +0000"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += ["Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines).replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()


SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@contextmanager
def commit_syncs(store: Store) -> Iterator[list[str]]:
    """The ``synchronous`` each COMMIT of ``store`` (SQLite) runs with, in order: what SQLite
    syncs by (FULL: an fdatasync of the WAL; NORMAL: none in WAL mode). Read inside the
    transaction, where SQLite refuses to change it, just before the driver's COMMIT."""
    from sqlalchemy import event

    seen: list[str] = []

    def before_commit(conn: Any) -> None:
        row = conn.connection.dbapi_connection.execute("PRAGMA synchronous").fetchone()
        seen.append(SYNC_NAMES[row[0]])

    event.listen(store.engine, "commit", before_commit)
    try:
        yield seen
    finally:
        event.remove(store.engine, "commit", before_commit)


async def check_stop_during_a_restart_leaves_no_child(process: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """For ``courier.CourierProcess`` and ``door.DoorProcess``, started: kill the child; once
    the restart has spawned its successor, and before that one is ready, ``stop()``. No child
    is left running (the successor was killed and reaped, not left untracked)."""
    import multiprocessing

    from listserv import door
    from listserv.backoff import RestartPolicy

    monkeypatch.setattr(process, "restart_policy", RestartPolicy(base=0.01, cap=0.01))
    # The successor's first word is never heard (until the end): stop() always comes while
    # its start waits for it, however fast the child starts.
    release = threading.Event()
    waiting = threading.Event()

    def never_ready(*_args: Any, **_kwargs: Any) -> tuple[str, Any]:
        waiting.set()
        release.wait(30)
        return ("error", "released by the test")

    before = {p.pid for p in multiprocessing.active_children()}
    monkeypatch.setattr(door, "first_word", never_ready)
    os.kill(process._process.pid, signal.SIGKILL)
    try:
        await until(waiting.is_set, "the successor's start waiting for it", timeout=10)
        spawned = [p for p in multiprocessing.active_children() if p.pid not in before]
        assert spawned, "a successor was spawned"
        await asyncio.wait_for(process.stop(), 10.0)
        assert all(not p.is_alive() for p in spawned), "a child left running after stop()"
        assert process.restarts == 0
    finally:
        release.set()
