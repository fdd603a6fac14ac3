"""DKIM: 'dkim keygen' writes a key and prints the record; every copy the server sends verifies
with dkimpy against that record, also after Python's email parser and generator."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dkim as dkimpy
import dns.resolver
import pytest

from listserv import config as config_mod
from listserv.config import ConfigError
from listserv.dkim import Algorithm, Signer, generate, load_signer, parse_key
from listserv.serve import App, StartupError
from listserv.store import Store
from tests.dnsdouble import dns_double
from tests.harness import DOMAIN, cli, mail, make_list, running, wait_until, write_config
from tests.smtpsink import SmtpSink

MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk", "cat@acme.example")
RECORD = re.compile(r'^(\S+) IN TXT ((?:"[^"]{1,255}" ?)+)$')


def keygen_record(config_path: Path, *args: str) -> str:
    """Run 'dkim keygen'; returns the zone-file line it printed."""
    result = cli(config_path, "dkim", "keygen", *args)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if " IN TXT " in x)
    assert RECORD.match(line), line
    return line


def keygen(config_path: Path, *args: str) -> tuple[str, str]:
    """Run 'dkim keygen'; returns the record's name and its value as DNS would give it."""
    match = RECORD.match(keygen_record(config_path, *args))
    assert match
    return match.group(1), "".join(re.findall(r'"([^"]*)"', match.group(2)))


DnsFunc = Callable[[bytes, int], bytes | None]


@contextmanager
def zone_served(line: str) -> Iterator[DnsFunc]:
    """The line 'dkim keygen' printed, published as zone-file text (its quoted strings as they
    are) by the DNS double on UDP, in a loop of its own; yields a dkimpy ``dnsfunc`` asking it
    through dnspython, as a receiver's resolver would."""
    match = RECORD.match(line)
    assert match, line
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = dns_double({}, other={(match.group(1), "TXT"): [match.group(2)]})
    host, port, double = asyncio.run_coroutine_threadsafe(served.__aenter__(), loop).result(5)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [host], port, 2.0

    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(qname.decode(), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    try:
        yield dnsfunc
        assert double.answered > 0  # the keys really came over the wire
    finally:
        asyncio.run_coroutine_threadsafe(served.__aexit__(None, None, None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def dnsfunc_for(name: str, value: str):  # type: ignore[no-untyped-def]
    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if qname.decode() == name else None
    return dnsfunc


def verifies(data: bytes, name: str, value: str) -> bool:
    return bool(dkimpy.verify(data, dnsfunc=dnsfunc_for(name, value)))


def round_trip(data: bytes) -> tuple[bytes, bool]:
    """Python's email parser and generator, as a filter on the way might apply them.

    policy=SMTP as is, when every header line fits in 78 characters. A post's List-Unsubscribe
    URL does not, and Python's generator then rewrites that header as encoded words (which
    breaks the header itself, signed or not): for such mail RFC 5322's limit of 998 is used."""
    longest = max(len(line) for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    policy = email.policy.SMTP if longest <= 78 else email.policy.SMTP.clone(max_line_length=998)
    return email.message_from_bytes(data, policy=policy).as_bytes(), longest <= 78


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, f"sqlite:///{tmp_path}/db", "127.0.0.1:25")
    name, value = keygen(config_path, "--selector", "cr1")
    key = tmp_path / "var/dkim/cr1.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert name == f"cr1._domainkey.{DOMAIN}."
    assert value.startswith("v=DKIM1; k=rsa; p=") and len(value) > 255  # so it was split
    assert parse_key(key.read_bytes()).private.key_size == 2048  # type: ignore[union-attr]
    before = key.read_bytes()
    again = cli(config_path, "dkim", "keygen", "--selector", "cr1")
    assert again.exit_code == 1 and "--force" in again.output and key.read_bytes() == before
    forced = cli(config_path, "dkim", "keygen", "--selector", "cr1", "--force")
    assert forced.exit_code == 0 and key.read_bytes() != before
    bad = cli(config_path, "dkim", "keygen", "--selector", "no_good!")
    assert bad.exit_code == 1 and "DNS label" in bad.output


def test_ed25519_record_is_the_raw_key(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, f"sqlite:///{tmp_path}/db", "127.0.0.1:25")
    _, value = keygen(config_path, "--selector", "ed", "--algorithm", "ed25519",
                      "--key-file", str(tmp_path / "ed.key"))
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", value)
    assert len((tmp_path / "ed.key").read_text().strip()) == 44  # base64 of the 32-byte seed


@pytest.mark.parametrize(("changes", "says"), [
    ({"dkim_selector": "s1"}, "dkim_key_file is empty"),
    ({"dkim_key_file": "k.key"}, "dkim_selector is not"),
    ({"dkim_selector": "s1", "dkim_key_file": "missing.key"}, "cannot be read"),
    ({"dkim_selector": "s1", "dkim_key_file": "junk.key"}, "not a DKIM private key"),
])
def test_a_key_that_cannot_be_used_stops_start_up(tmp_path: Path, store: Store,
                                                  changes: dict[str, str], says: str) -> None:
    (tmp_path / "junk.key").write_text("not a key\n")
    cfg = config_mod.load(write_config(tmp_path, "sqlite:///x", "127.0.0.1:25", **changes), env={})
    with pytest.raises(ConfigError, match=says):
        load_signer(cfg)
    app = App(cfg, store, smtp_port=0, web_port=0)
    with pytest.raises(StartupError, match=says):
        asyncio.run(app.start())


def test_bad_selector_is_refused_by_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, "sqlite:///x", "127.0.0.1:25", dkim_selector="a b")
    with pytest.raises(ConfigError, match=r"\[delivery\] dkim_selector must be a DNS label"):
        config_mod.load(path, env={})
    env = {"COMMONROOM_DELIVERY_DKIM_SELECTOR": "env1", "COMMONROOM_DELIVERY_DKIM_KEY_FILE": "e.key"}
    cfg = config_mod.load(write_config(tmp_path, "sqlite:///x", "127.0.0.1:25"), env=env)
    assert (cfg.delivery.dkim_selector, cfg.delivery.dkim_key_file) == ("env1", "e.key")


def test_the_body_is_hashed_once_per_post() -> None:
    signer = Signer(generate(Algorithm.RSA), DOMAIN, "s")
    body = b"\r\n" + b"The same words.\r\n" * 50
    for who in MEMBERS:
        signed = signer(f"From: a@x.org\r\nList-Unsubscribe: <mailto:{who}>\r\n".encode() + body)
        assert verifies(signed, f"s._domainkey.{DOMAIN}.", signer.key.txt_value())
    assert signer.body_hashes == 1


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_delivered_mail_verifies(tmp_path: Path, store: Store, db_url: str, sink: SmtpSink,
                                 algorithm: str) -> None:
    base = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
    record = keygen_record(base, "--selector", "cr", "--algorithm", algorithm)
    config_path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}", dkim_selector="cr",
                               dkim_key_file="var/dkim/cr.key")
    make_list(store, "demo", members=MEMBERS)
    with running(config_mod.load(config_path, env={}), store) as srv:
        srv.send(MEMBERS[0], f"demo@{DOMAIN}",
                 mail(MEMBERS[0], f"demo@{DOMAIN}", "Résumé of the day   ",
                      "Lines  with  spaces \nand trailing blanks   \n\n\n", message_id="p1@x"))
        srv.send("new@council.gov.uk", f"demo-join@{DOMAIN}",
                 mail("new@council.gov.uk", f"demo-join@{DOMAIN}", "join"))
        wait_until(lambda: len(sink.messages) == 4, what="three copies and a confirmation")
        srv.drain()
        signer = srv.app.worker.sign  # type: ignore[union-attr]
        assert isinstance(signer, Signer) and signer.body_hashes == 2  # one post, one notice
    strictly = 0
    with zone_served(record) as dnsfunc:
        for m in sink.messages:
            assert m.data.startswith(b"DKIM-Signature: "), m.data[:200]
            assert dkimpy.verify(m.data, dnsfunc=dnsfunc), m.data[:2000]
            again, strict = round_trip(m.data)
            assert dkimpy.verify(again, dnsfunc=dnsfunc)
            strictly += strict
        post = next(m.data for m in sink.messages if b"Lines  with" in m.data)
        tampered = post.replace(b"Lines  with", b"Lines with!")
        assert not dkimpy.verify(tampered, dnsfunc=dnsfunc)  # the test can fail
    for m in sink.messages:
        sig = email.message_from_bytes(m.data)["DKIM-Signature"]
        tags = dict(t.strip().split("=", 1) for t in sig.split(";"))
        assert tags["c"] == "relaxed/relaxed" and tags["d"] == DOMAIN and tags["s"] == "cr"
        assert tags["a"] == ("rsa-sha256" if algorithm == "rsa" else "ed25519-sha256")
    assert strictly >= 1  # the confirmation went through policy=SMTP itself
    posts = [m for m in sink.messages if b"List-Unsubscribe-Post" in m.data]
    assert len(posts) == 3
    signed = dict(t.strip().split("=", 1) for t in email.message_from_bytes(
        posts[0].data)["DKIM-Signature"].split(";"))["h"]
    assert "".join(signed.split()).split(":") == [
        "from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
        "list-unsubscribe-post", "from"]




@pytest.mark.parametrize("kind", ["notice", "post", "digest"])
def test_every_kind_of_outbox_row_is_signed(store: Store, kind: str) -> None:
    from datetime import UTC, datetime

    from listserv.outbox import Claimed, OutboxWorker

    def copy(_pk: int, rcpt: str) -> bytes:
        return f"From: demo@{DOMAIN}\r\nTo: {rcpt}\r\nSubject: {kind}\r\n\r\nText.\r\n".encode()

    signer = Signer(generate(Algorithm.ED25519), DOMAIN, "s")
    worker = OutboxWorker(store, lambda: None, copy, connections=1,  # type: ignore[arg-type, return-value]
                          render_digest=copy, sign=signer)
    row = Claimed(id=1, list_id=None, message_pk=7 if kind == "post" else None,
                  digest_id=3 if kind == "digest" else None,
                  payload=copy(0, "x@y.org") if kind == "notice" else None,
                  recipient="x@y.org", sender=f"demo-bounces@{DOMAIN}", attempts=0,
                  queued_at=datetime.now(UTC), priority=0)
    data = worker._finished(row)
    assert data is not None and data.startswith(b"DKIM-Signature: ")
    assert verifies(data, f"s._domainkey.{DOMAIN}.", signer.key.txt_value())
