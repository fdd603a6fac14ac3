"""The whole server on loopback for end-to-end tests: ``App`` in a thread with its own loop.

Tests stay synchronous: they talk to the server with smtplib (a real SMTP client), read what the
smarthost received from an ``SmtpSink`` (a real SMTP server), and run CLI commands through
click's runner against the same configuration file. Nothing here is a fake of the product.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

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
