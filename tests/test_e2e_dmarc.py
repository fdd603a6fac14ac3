"""DMARC mitigation end to end: a DNS double on loopback answers the author domains' policies."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from listserv import config as config_mod
from listserv.store import Store
from tests.dnsdouble import dns_double
from tests.harness import DOMAIN, Running, cli, mail, make_list, parse, running, write_config
from tests.smtpsink import SmtpSink

RECORDS = {"_dmarc.strict.example": ["v=DMARC1; p=reject"],
           "_dmarc.council.gov.uk": ["v=DMARC1; p=quarantine; sp=none"]}


@pytest.fixture
def nameserver() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cm = dns_double(RECORDS)
    host, port, _ = asyncio.run_coroutine_threadsafe(cm.__aenter__(), loop).result(5)
    try:
        yield f"{host}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(cm.__aexit__(None, None, None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def setup(store: Store, tmp_path: Path, db_url: str, nameserver: str
          ) -> Iterator[tuple[Running, SmtpSink, Path]]:
    members = ("ann@strict.example", "bob@relaxed.example", "cy@north.council.gov.uk")
    make_list(store, "demo", members=members)
    with SmtpSink() as sink:
        path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}",
                            dmarc_nameservers=nameserver)
        with running(config_mod.load(path, env={}), store) as srv:
            yield srv, sink, path


def froms(server: Running, sink: SmtpSink, author: str) -> set[tuple[str, str | None]]:
    sink.messages.clear()
    server.send(author, f"demo@{DOMAIN}", mail(f"Author <{author}>", f"demo@{DOMAIN}", "Hi"))
    server.drain()
    return {(parse(m.data)["From"], parse(m.data)["Reply-To"]) for m in sink.messages}


def test_strict_domains_are_sent_as_the_list(setup: tuple[Running, SmtpSink, Path]) -> None:
    server, sink, _ = setup
    assert froms(server, sink, "ann@strict.example") == {
        (f"Author via demo <demo@{DOMAIN}>", "Author <ann@strict.example>")}
    # A subdomain without its own record takes the organisational domain's sp=none.
    assert froms(server, sink, "cy@north.council.gov.uk") == {
        ("Author <cy@north.council.gov.uk>", None)}
    assert froms(server, sink, "bob@relaxed.example") == {("Author <bob@relaxed.example>", None)}


def test_list_setting_forces_it_off_and_on(setup: tuple[Running, SmtpSink, Path]) -> None:
    server, sink, path = setup
    assert cli(path, "lists", "set", "demo", "dmarc_mitigation", "never").exit_code == 0
    assert froms(server, sink, "ann@strict.example") == {("Author <ann@strict.example>", None)}
    assert cli(path, "lists", "set", "demo", "dmarc_mitigation", "always").exit_code == 0
    assert froms(server, sink, "bob@relaxed.example") == {
        (f"Author via demo <demo@{DOMAIN}>", "Author <bob@relaxed.example>")}
