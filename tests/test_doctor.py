"""'commonroom doctor' against a DNS double (a good zone and a broken one), the SMTP sink and
an HTTPS double as the smarthost and the web pages."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from listserv import config as config_mod
from listserv import doctor
from listserv.config import Config
from listserv.dkim import Algorithm, generate
from listserv.doctor import Status
from listserv.store import Store
from tests.dnsdouble import dns_double
from tests.harness import DOMAIN, cli, make_list, write_config
from tests.smtpsink import SmtpSink
from tests.tlscert import trusted_server_context


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A certificate for 127.0.0.1 that this test's clients trust (SSL_CERT_FILE)."""
    return trusted_server_context(tmp_path, monkeypatch)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_site(tls: ssl.SSLContext) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Accept:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


@pytest.fixture
def starttls_smarthost(tls: ssl.SSLContext) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(_Accept(), hostname="127.0.0.1", port=port, tls_context=tls)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def config(tmp_path: Path, dns_port: int, smarthost_port: int, web: str) -> Config:
    key = tmp_path / "cr.key"
    return config_mod.load(env={}, overrides={
        "server": {"domain": DOMAIN, "web_base_url": web},
        "delivery": {"smarthost": f"127.0.0.1:{smarthost_port}", "dkim_selector": "cr",
                     "dkim_key_file": str(key), "dmarc_nameservers": f"127.0.0.1:{dns_port}"}})


def good_zone(public: str) -> tuple[dict[str, list[str]], dict[tuple[str, str], list[str]]]:
    txt = {DOMAIN: ["v=spf1 mx include:_spf.relay.example -all"],
           "_spf.relay.example": ["v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 ~all"],
           f"cr._domainkey.{DOMAIN}": [public],
           f"_dmarc.{DOMAIN}": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@lists.example.org"]}
    other = {(DOMAIN, "MX"): ["10 mx.relay.example."], ("mx.relay.example", "A"): ["192.0.2.25"]}
    return txt, other


def by_check(findings: list[doctor.Finding]) -> dict[str, doctor.Finding]:
    return {f.check: f for f in findings}


async def test_a_good_zone_passes(tmp_path: Path, https_site: str,
                                  starttls_smarthost: int) -> None:
    pair = generate(Algorithm.RSA)
    (tmp_path / "cr.key").write_bytes(pair.private_bytes())
    txt, other = good_zone(pair.txt_value())
    async with dns_double(txt, other=other) as (_host, port, _double):
        cfg = config(tmp_path, port, starttls_smarthost, https_site)
        found = by_check(await doctor.run(cfg, timeout=2.0))
    assert {k: f.status for k, f in found.items()} == {k: Status.OK for k in found}, found
    assert set(found) == {"MX", "SPF", "DKIM", "DMARC", "smarthost", "web"}
    assert "STARTTLS" in found["smarthost"].detail


async def test_a_broken_zone_says_what_to_publish(tmp_path: Path, sink: SmtpSink) -> None:
    pair = generate(Algorithm.ED25519)
    (tmp_path / "cr.key").write_bytes(pair.private_bytes())
    other_key = generate(Algorithm.ED25519).txt_value()
    txt = {DOMAIN: ["v=spf1 ip4:192.0.2.1 -all"], f"cr._domainkey.{DOMAIN}": [other_key],
           f"_dmarc.{DOMAIN}": ["v=DMARC1; p=bogus"]}
    async with dns_double(txt) as (_host, port, _double):
        cfg = config(tmp_path, port, sink.port, "http://lists.example.org")
        found = by_check(await doctor.run(cfg, timeout=1.0))
    assert found["MX"].status is Status.FAIL and found["MX"].fix == f"{DOMAIN}. IN MX 10 YOUR-MTA-HOST."
    assert found["SPF"].status is Status.WARN and "cannot see" in found["SPF"].detail  # no MX
    assert found["DKIM"].status is Status.FAIL
    assert found["DKIM"].fix == f'cr._domainkey.{DOMAIN}. IN TXT "{pair.txt_value()}"'
    assert found["DMARC"].status is Status.FAIL and found["DMARC"].fix.startswith(f"_dmarc.{DOMAIN}.")
    assert found["smarthost"].status is Status.WARN and "no STARTTLS" in found["smarthost"].detail
    assert found["web"].status is Status.FAIL and "not HTTPS" in found["web"].detail


async def test_missing_records_and_a_dead_smarthost(tmp_path: Path) -> None:
    pair = generate(Algorithm.RSA)
    (tmp_path / "cr.key").write_bytes(pair.private_bytes())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = int(s.getsockname()[1])
    async with dns_double({}) as (_host, port, _double):
        found = by_check(await doctor.run(config(tmp_path, port, dead, "https://127.0.0.1:1"),
                                          timeout=1.0))
    assert found["SPF"].fix == f'{DOMAIN}. IN TXT "v=spf1 mx -all"'  # local smarthost
    assert "no key is published" in found["DKIM"].detail
    assert found["smarthost"].status is Status.FAIL and "cannot reach" in found["smarthost"].detail
    assert found["web"].status is Status.FAIL and "not reachable" in found["web"].detail


async def test_dns_that_does_not_answer_is_a_failure_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "cr.key").write_bytes(generate(Algorithm.ED25519).private_bytes())
    async with dns_double({}, silent=True) as (_host, port, _double):
        found = by_check(await doctor.run(config(tmp_path, port, 1, "http://x.example"),
                                          timeout=0.3))
    assert "did not answer" in found["MX"].detail and "did not answer" in found["DMARC"].detail


def test_cli_exits_non_zero_on_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "commonroom.toml"
    path.write_text(f'[server]\ndomain = "{DOMAIN}"\n[delivery]\ndmarc_nameservers = "127.0.0.1:9"\n'
                    f'dmarc_timeout = 0.2\n[database]\nurl = "sqlite:///{tmp_path}/db"\n')
    result = cli(path, "doctor", "--timeout", "0.3")
    assert result.exit_code == 1
    assert "FAIL  DKIM" in result.output and "fix: commonroom dkim keygen" in result.output
    assert "check(s) failed" in result.output


class _RefuseSender:
    """Takes only the senders in ``allowed``, and notes every MAIL FROM it was asked."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.allowed, self.asked = allowed, list[str]()

    async def handle_MAIL(self, server: object, session: object, envelope: object,
                          address: str, mail_options: list[str]) -> str:
        self.asked.append(address)
        if address in self.allowed:
            return "250 OK"
        return "553 5.7.1 Sender address rejected: not owned by you"


@contextmanager
def refusing_smarthost(tls: ssl.SSLContext, handler: _RefuseSender) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=tls)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


BOUNCES = f"pub-bounces@{DOMAIN}"
VERP = f"pub-bounces+postmaster={DOMAIN}@{DOMAIN}"  # as a member's copy carries it


async def test_a_smarthost_that_refuses_our_sender_fails(tmp_path: Path,
                                                         tls: ssl.SSLContext) -> None:
    (tmp_path / "cr.key").write_bytes(generate(Algorithm.RSA).private_bytes())
    handler = _RefuseSender()
    with refusing_smarthost(tls, handler) as port:
        cfg = config(tmp_path, 9, port, "http://x.example")
        found = await doctor.check_smarthost(cfg, 2.0, "pub")
    assert found.status is Status.FAIL
    assert f"refused MAIL FROM:<{BOUNCES}>: 553" in found.detail
    assert found.fix == f"let the smarthost relay for {DOMAIN} (accept {BOUNCES} and {VERP})"


@pytest.mark.parametrize(("allowed", "status", "said"), [
    ((BOUNCES, VERP), Status.OK, f"accepts {BOUNCES} and {VERP}"),
    ((BOUNCES,), Status.FAIL, f"refused MAIL FROM:<{VERP}>: 553"),  # no "+" extension
])
async def test_the_smarthost_is_asked_for_the_senders_the_list_uses(
        tmp_path: Path, tls: ssl.SSLContext, allowed: tuple[str, ...], status: Status,
        said: str) -> None:
    (tmp_path / "cr.key").write_bytes(generate(Algorithm.RSA).private_bytes())
    handler = _RefuseSender(allowed)
    with refusing_smarthost(tls, handler) as port:
        found = await doctor.check_smarthost(config(tmp_path, 9, port, "http://x.example"),
                                             2.0, "pub")
    assert found.status is status and said in found.detail, found
    assert handler.asked == [BOUNCES, VERP][:len(allowed) + 1]


def test_cli_checks_the_first_list_or_the_one_named(tmp_path: Path, tls: ssl.SSLContext,
                                                    store: Store, db_url: str) -> None:
    make_list(store, "pub")
    make_list(store, "announce")
    handler = _RefuseSender()
    with refusing_smarthost(tls, handler) as port:
        path = write_config(tmp_path, db_url, f"127.0.0.1:{port}",
                            dmarc_nameservers="127.0.0.1:9")
        cli(path, "doctor", "--timeout", "0.3")
        named = cli(path, "doctor", "--timeout", "0.3", "--list", "announce")
        unknown = cli(path, "doctor", "--timeout", "0.3", "--list", "nope")
    assert handler.asked == [BOUNCES, f"announce-bounces@{DOMAIN}"]
    assert f"refused MAIL FROM:<announce-bounces@{DOMAIN}>" in named.output
    assert unknown.exit_code != 0 and "nope" in unknown.output and handler.asked[2:] == []


MX_ZONE = {(DOMAIN, "MX"): ["10 mx.lists.example.org."],
           ("mx.lists.example.org", "A"): ["192.0.2.25"]}


@pytest.mark.parametrize(("smarthost", "spf", "other", "status", "said"), [
    # A smarthost on a public address: SPF must allow that address.
    ("192.0.2.7", "v=spf1 ip4:192.0.2.0/24 -all", {}, Status.OK, "allows the smarthost's"),
    ("192.0.2.7", "v=spf1 ip4:198.51.100.1 -all", {}, Status.FAIL, "add ip4:192.0.2.7"),
    # On loopback or a private network (the MTA on this host, as deploy/ sets it up), mail
    # leaves from the MTA's public address: the MX host's is the best guess doctor has.
    ("127.0.0.1", "v=spf1 mx -all", MX_ZONE, Status.OK, "192.0.2.25"),
    ("10.1.2.3", "v=spf1 ip4:192.0.2.25 -all", MX_ZONE, Status.OK, "192.0.2.25"),
    ("127.0.0.1", "v=spf1 ip4:198.51.100.1 -all", MX_ZONE, Status.WARN, "192.0.2.25"),
    ("127.0.0.1", "v=spf1 mx -all", {}, Status.WARN, "cannot see"),
    ("127.0.0.1", None, MX_ZONE, Status.FAIL, '"v=spf1 mx -all"'),
])
async def test_spf_is_checked_for_the_address_mail_leaves_from(
        smarthost: str, spf: str | None, other: dict[tuple[str, str], list[str]],
        status: Status, said: str) -> None:
    async with dns_double({DOMAIN: [spf]} if spf else {}, other=other) as (_h, port, _d):
        cfg = config_mod.load(env={}, overrides={
            "server": {"domain": DOMAIN},
            "delivery": {"smarthost": f"{smarthost}:25",
                         "dmarc_nameservers": f"127.0.0.1:{port}"}})
        found = await doctor.check_spf(cfg, doctor.Dns(cfg, 1.0))
    assert found.status is status, found
    assert said in found.detail + " " + found.fix, found
