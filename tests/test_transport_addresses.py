"""The SMTP transport puts envelope addresses on the wire as aiosmtplib quotes them, without
aiosmtplib's per-address parse for plain ones (a third of the client's Python time a copy)."""

from __future__ import annotations

from typing import Any

import aiosmtplib.smtp
import pytest
from aiosmtplib.email import quote_address

from listserv.addresses import verp_sender
from listserv.transports import Outcome, SmtpTransport, envelope_address
from tests.smtpsink import SmtpSink

PLAIN = [
    "member000001@council1.example", "a@b", "x.y-z@sub.council.example",
    verp_sender("bench", "lists.example.org", "member000042@council42.example"),
    verp_sender("tools", "lists.example.org", "o'brien+lists@derbyshire.gov.uk"),
    "list-bounces@lists.example.org", "A.Person@Council.Example", "!#$%&'*+/=?^_`{|}~-@x.org",
]
OTHERS = [
    "", " ", "Name <a@b.org>", "<a@b.org>", '"a b"@example.org', "a..b@example.org",
    ".a@example.org", "a.@example.org", "a@example.org.", "a@[192.0.2.1]", "a@-x..org",
    "ünï@example.org", "a@exämple.org", "a b@example.org", "a@b@c.org", "a(c)@example.org",
    "a@example.org\r\nRCPT TO:<b@example.org>", "no-at-sign", "@example.org", "a@",
]


@pytest.mark.parametrize("address", PLAIN)
def test_plain_addresses_are_quoted_as_aiosmtplib_quotes_them(address: str) -> None:
    assert envelope_address(address) == quote_address(address).encode()


@pytest.mark.parametrize("address", OTHERS)
def test_other_addresses_are_left_to_aiosmtplib(address: str) -> None:
    assert envelope_address(address) is None


async def test_plain_envelopes_skip_aiosmtplib_s_parse(sink: SmtpSink,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def counting(address: str) -> str:
        parsed.append(address)
        return quote_address(address)

    monkeypatch.setattr(aiosmtplib.smtp, "quote_address", counting)
    sender = verp_sender("bench", "lists.example.org", "m1@council1.example")
    sink.rcpt_replies["gone@example.org"] = 550
    transport = SmtpTransport(sink.host, sink.port, timeout=5)
    try:
        sent = await transport.send(sender, "m1@council1.example", b"Subject: a\r\n\r\nhi\r\n")
        odd = await transport.send(sender, '"m 2"@council1.example', b"Subject: b\r\n\r\nhi\r\n")
        gone = await transport.send(sender, "gone@example.org", b"Subject: c\r\n\r\nhi\r\n")
        after = await transport.send("", "m3@council1.example", b"Subject: d\r\n\r\nhi\r\n")
    finally:
        await transport.close()
    assert [r.outcome for r in (sent, odd, after)] == [Outcome.SENT] * 3
    assert (gone.outcome, gone.code) == (Outcome.BOUNCE, 550)
    assert parsed == ['"m 2"@council1.example', ""]  # only what is not plain
    got: list[Any] = [(m.mail_from, m.rcpt_tos) for m in sink.messages]
    assert got == [(sender, ("m1@council1.example",)), (sender, ('"m 2"@council1.example',)),
                   ("<>", ("m3@council1.example",))]
