"""The SMTP door's hooks: RCPT only reads (issue 7.17); a DMARC lookup that fails on arrival is
stored as "unknown", not "none" (issue 7.18); MAIL and RCPT arguments are read as aiosmtpd reads
them."""

from __future__ import annotations

import asyncio
import itertools
import random
import smtplib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import Message
from listserv.serve import App
from listserv.smtp import ListSMTP, plain_path
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


PATHS = ["<ann@example.org>", "<ann@example.org> SIZE=1200 BODY=8BITMIME", "<a@b>\tSMTPUTF8",
         "<A.B+tag=x@Sub-1.Example.ORG>", "<o'brien!#$%&*/?^_`{|}~-@x.y>", "<a@b>x",
         "<a@b>  SIZE=1", "<a@b> (comment) SIZE=1", "<a@b>(c)", "<a..b@c>", "<.a@c>",
         "<a@b..c>", "<a@b.>", "<>", "<\"a b\"@c>", "<@route:a@b>", "a@b", "<a@[127.0.0.1]>",
         "<anne@exämple.org>", "<a@b", "<a b@c>", "<a@b> ", "<a@b>\r"]


def near_paths(n: int) -> list[str]:
    """``n`` arguments shaped like "<local@domain>tail", each part drawn from characters that
    make and break the plain form."""
    rnd = random.Random(12)

    def part(plain: str, odd: str) -> str:  # mostly plain characters, some odd ones
        return "".join(rnd.choice(odd if rnd.random() < 0.08 else plain)
                       for _ in range(rnd.randint(0, 6)))
    return ["".join([part(" ", "<") if rnd.random() < 0.1 else "", "<", part("ab.-+~", '="( '),
                     "@", part("xy.-1", "[]@ "), ">", part(" XS=", "(\t\r\x0b\u2003")])
            for _ in range(n)]


@pytest.mark.parametrize("arg", PATHS + near_paths(400) + [
    f"<{a}@{b}>{c}" for a, b, c in itertools.product(
        ["a", "a.b", "a.", "-", "~"], ["b", "b.c", "b-.c"], ["", " X", "  X=1 Y", " (", "\t"])])
def test_a_plain_path_is_read_as_aiosmtpd_reads_it(arg: str) -> None:
    """The door's shortcut for MAIL/RCPT arguments gives what aiosmtpd's parser gives."""
    plain = plain_path(arg)
    if plain is not None:
        assert plain == SMTP._getaddr(SimpleNamespace(local_part_limit=0), arg)  # type: ignore[arg-type]


def test_the_common_paths_take_the_shortcut() -> None:
    assert plain_path("<ann@example.org>") == ("ann@example.org", "")
    assert plain_path("<a@b> SIZE=1") == ("a@b", "SIZE=1")
    assert plain_path("<a@b> \r SIZE=1 ") == ("a@b", "SIZE=1 ")
    assert plain_path("<>") is None and plain_path('<"a b"@c>') is None
    limited = ListSMTP.__new__(ListSMTP)
    limited.local_part_limit = 3
    assert limited._getaddr("<abcd@x>") == (None, None)
    assert limited._getaddr("<abc@x> SIZE=1") == ("abc@x", "SIZE=1")
