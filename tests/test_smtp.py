"""The SMTP door's hooks: RCPT only reads (issue 7.17); a DMARC lookup that fails on arrival is
stored as "unknown", not "none" (issue 7.18)."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import Message
from listserv.serve import App
from listserv.store import Store
from tests.dnsdouble import dns_double
from tests.harness import DOMAIN, Running, mail, make_list, running, write_config
from tests.smtpsink import SmtpSink


@pytest.fixture
def silent_nameserver() -> Iterator[str]:
    """A nameserver on loopback that hears every query and answers none (DNS is down)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cm = dns_double({"_dmarc.strict.example": ["v=DMARC1; p=reject"]}, silent=True)
    host, port, _ = asyncio.run_coroutine_threadsafe(cm.__aenter__(), loop).result(5)
    try:
        yield f"{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(cm.__aexit__(None, None, None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_rcpt_is_answered_while_a_writer_holds_the_lock(store: Store, tmp_path: Path,
                                                         db_url: str) -> None:
    if not store.is_sqlite:
        pytest.skip("the write lock is SQLite's")
    make_list(store, "demo", members=("ann@example.org",))
    path = write_config(tmp_path, db_url, "127.0.0.1:9")
    cfg = config_mod.load(path, env={})
    # Without the scheduler: APScheduler's SQLAlchemy job store works on the event loop, so a
    # held write lock can stall it there (a separate defect, not the SMTP door's).
    srv = Running(cfg, store)
    srv.app = App(cfg, store, smtp_port=0, web_port=0, with_scheduler=False)
    srv.start()
    try:
        writer = sqlite3.connect(store.url.split("///", 1)[1], isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # e.g. another post's fan-out being committed
        try:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=3) as client:
                client.ehlo()
                client.mail("ann@example.org")
                assert client.rcpt(f"demo@{DOMAIN}")[0] == 250
                assert client.rcpt(f"nope@{DOMAIN}")[0] == 550
                client.rset()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    finally:
        srv.stop()


def test_a_failed_dmarc_lookup_is_stored_as_unknown(store: Store, tmp_path: Path, db_url: str,
                                                    silent_nameserver: str) -> None:
    make_list(store, "demo", members=("ann@strict.example", "bob@example.org"))
    with SmtpSink() as sink:
        path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}",
                            dmarc_nameservers=silent_nameserver)
        with running(config_mod.load(path, env={}), store) as srv:
            srv.send("ann@strict.example", f"demo@{DOMAIN}",
                     mail("Ann <ann@strict.example>", f"demo@{DOMAIN}", "Hi"))
            srv.drain()
    with store.session() as s:
        assert s.exec(select(Message.dmarc_policy)).one() == "unknown"
    # Still delivered (unmunged while DNS stays down; the renderer asks again after a minute).
    assert {m.rcpt_tos[0] for m in sink.messages} == {"ann@strict.example", "bob@example.org"}
