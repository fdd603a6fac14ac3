"""The SMTP transport's DATA puts the bytes aiosmtplib would put on the wire, skipping its two
regex passes for a message that is already wire-ready (CRLF lines, nothing to dot-stuff)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import aiosmtplib
import aiosmtplib.protocol
import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from listserv import transports
from listserv.transports import Outcome, SmtpTransport, wire_ready
from tests.smtpsink import SmtpSink

SENDER = "demo-bounces@lists.example.org"


def aiosmtplib_wire(data: bytes) -> bytes:
    """What aiosmtplib's execute_data_command writes after DATA."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


def test_a_wire_ready_message_is_what_aiosmtplib_would_send() -> None:
    # Every string of up to 7 of these bytes: line ends of every kind, dots, text.
    for n in range(8):
        for letters in itertools.product((b"a", b"\r", b"\n", b"."), repeat=n):
            data = b"".join(letters)
            if wire_ready(data):
                assert aiosmtplib_wire(data) == data + b".\r\n", data


@pytest.mark.parametrize("data", [b"a\r\nb\r\n", b"Subject: x\r\n\r\nhi\r\n", b"\r\n"])
def test_crlf_messages_without_leading_dots_are_ready(data: bytes) -> None:
    assert wire_ready(data)


@pytest.mark.parametrize("data", [b"a\nb\r\n", b"a\rb\r\n", b"a\r\r\n", b"a\r\nb", b"",
                                  b".a\r\n", b"a\r\n.b\r\n", b"a\r\n.\r\n", b"a\n\r\n"])
def test_anything_aiosmtplib_would_change_is_not(data: bytes) -> None:
    assert not wire_ready(data)


MESSAGES = [
    b"Subject: ready\r\n\r\nhello\r\nworld\r\n",
    b"Subject: lone LF\n\nhello\nworld\n",
    b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n",
    b"Subject: no end\r\n\r\nno final line end",
    b"Subject: mixed\r\n\r\na\rb\r\r\nc\n",
]


async def test_the_sink_gets_what_smtp_data_gives_it(sink: SmtpSink,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    normalized: list[bytes] = []

    def counting(message: bytes) -> bytes:
        normalized.append(message)
        return normalize_message_line_endings(message)

    # aiosmtplib's own DATA, for the reference copies.
    reference = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=5)
    await reference.connect()
    try:
        for data in MESSAGES:
            await reference.sendmail(SENDER, ["ref@example.org"], data)
    finally:
        await reference.quit()
    monkeypatch.setattr(aiosmtplib.protocol, "normalize_message_line_endings", counting)
    transport = SmtpTransport(sink.host, sink.port, timeout=5)
    try:
        results = [await transport.send(SENDER, "m1@example.org", data) for data in MESSAGES]
    finally:
        await transport.close()
    assert [r.outcome for r in results] == [Outcome.SENT] * len(MESSAGES)
    got = [m.data for m in sink.messages]
    assert got[len(MESSAGES):] == got[:len(MESSAGES)]
    # Only the messages that needed aiosmtplib's regexes went through them.
    assert normalized == [d for d in MESSAGES if not wire_ready(d)] and len(normalized) == 4


async def test_a_refused_data_is_a_bounce_and_the_connection_is_reused(sink: SmtpSink) -> None:
    sink.script_data(554, 451, 250)
    transport = SmtpTransport(sink.host, sink.port, timeout=5)
    try:
        results = [await transport.send(SENDER, f"m{n}@example.org", MESSAGES[0])
                   for n in range(3)]
    finally:
        await transport.close()
    assert [(r.outcome, r.code) for r in results] == [
        (Outcome.BOUNCE, 554), (Outcome.RETRY, 451), (Outcome.SENT, 250)]
    assert len(sink.sessions) == 1


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A smarthost without PIPELINING: these tests are about aiosmtplib's own DATA path and
    the shortcut through it, which a pipelining connection does not take."""
    with SmtpSink(pipelining=False) as s:
        yield s


@pytest.fixture
def fresh_check() -> Iterator[None]:
    """``data_shortcut`` checks again in the test, and again after it."""
    transports.data_shortcut.cache_clear()
    yield
    transports.data_shortcut.cache_clear()


async def _through_transport(sink: SmtpSink, copies: int = 1) -> list[bytes]:
    transport = SmtpTransport(sink.host, sink.port, timeout=5)
    try:
        results = [await transport.send(SENDER, "m1@example.org", data)
                   for _ in range(copies) for data in MESSAGES]
    finally:
        await transport.close()
    assert [r.outcome for r in results] == [Outcome.SENT] * len(MESSAGES) * copies
    return [m.data for m in sink.messages[-len(MESSAGES) * copies:]]


async def test_without_the_internals_every_copy_takes_aiosmtplib_data_the_same_bytes(
        sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        fresh_check: None) -> None:
    assert transports.data_shortcut()
    shortcut = await _through_transport(sink)
    transports.data_shortcut.cache_clear()
    normalized: list[bytes] = []

    def counting(message: bytes) -> bytes:
        normalized.append(message)
        return normalize_message_line_endings(message)

    monkeypatch.setattr(aiosmtplib.protocol, "normalize_message_line_endings", counting)
    # A later aiosmtplib without SMTPProtocol where the shortcut looks for it (aiosmtplib's
    # own modules hold their reference and keep working).
    monkeypatch.delattr(aiosmtplib.protocol, "SMTPProtocol")
    with caplog.at_level(logging.WARNING, logger="commonroom.transports"):
        fallback = await _through_transport(sink, copies=3)
    assert fallback == shortcut * 3
    assert normalized == MESSAGES * 3, "every copy through aiosmtplib's own DATA"
    said = [r.getMessage() for r in caplog.records if r.name == "commonroom.transports"]
    assert len(said) == 1 and "DATA shortcut" in said[0], said


def test_the_check_fails_on_a_protocol_without_the_internals(
        monkeypatch: pytest.MonkeyPatch, fresh_check: None) -> None:
    class Renamed:  # a later aiosmtplib that renamed read_response and lost its timeout
        def write(self, data: bytes) -> None: ...

        async def read_reply(self) -> None: ...

    monkeypatch.setattr(aiosmtplib.protocol, "SMTPProtocol", Renamed)
    assert not transports.data_shortcut()
