"""PIPELINING (RFC 2920): with a smarthost that offers it, the SMTP transport sends MAIL, RCPT
and DATA in one write and reads their replies in order. The outcomes, the connection reuse
and the bytes on the wire are those of the transport without it (each command waiting for
its reply), whatever is refused where; tests/test_transport_data.py covers DATA's bytes."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtplib.protocol import SMTPProtocol

from listserv import transports
from listserv.transports import Outcome, SendResult, SmtpTransport, parse_replies
from tests.smtpsink import DROP, SmtpSink
from tests.tlscert import trusted_server_context

SENDER = "demo-bounces@lists.example.org"
READY = b"Subject: ready\r\n\r\nhello\r\n"
NOT_READY = b"Subject: dots\n\n.leading dot\nno end"
EIGHT_BIT = "Subject: caf\u00e9\r\n\r\ncaf\u00e9\r\n".encode()

# (sender, recipient, message, (outcome, code)), sent in this order over one transport.
SCRIPT = [
    (SENDER, "m1@example.org", READY, (Outcome.SENT, 250)),
    ("refused@lists.example.org", "m2@example.org", READY, (Outcome.BOUNCE, 553)),
    (SENDER, "gone@example.org", READY, (Outcome.BOUNCE, 550)),
    (SENDER, "busy@example.org", READY, (Outcome.RETRY, 450)),
    (SENDER, "m3@example.org", READY, (Outcome.BOUNCE, 554)),  # DATA refused (scripted)
    (SENDER, "m4@example.org", READY, (Outcome.RETRY, 451)),  # DATA refused (scripted)
    ("later@lists.example.org", "m5@example.org", READY, (Outcome.RETRY, 421)),
    (SENDER, "m6@example.org", NOT_READY, (Outcome.SENT, 250)),
    (SENDER, "m7@example.org", EIGHT_BIT, (Outcome.SENT, 250)),
    (SENDER, "Odd Name <m8@example.org>", READY, (Outcome.SENT, 250)),  # aiosmtplib parses it
]


def scripted_sink(pipelining: bool) -> SmtpSink:
    return SmtpSink(pipelining=pipelining,
                    mail_replies={"refused@lists.example.org": 553,
                                  "later@lists.example.org": 421},
                    rcpt_replies={"gone@example.org": 550, "busy@example.org": 450})


async def run_script(sink: SmtpSink) -> list[tuple[Outcome, int]]:
    sink.script_data(250, 554, 451)  # m1, m3, m4
    transport = SmtpTransport(sink.host, sink.port, timeout=5)
    try:
        results = [await transport.send(s, r, d) for s, r, d, _ in SCRIPT]
    finally:
        await transport.close()
    return [(r.outcome, r.code) for r in results]


@pytest.fixture
def fresh_check() -> Iterator[None]:
    transports.pipelining.cache_clear()
    yield
    transports.pipelining.cache_clear()


def _group(chunks: list[bytes]) -> list[bytes]:
    """The chunks the sink read that hold a whole MAIL, RCPT, DATA group."""
    return [c for c in chunks if c.startswith(b"MAIL FROM:") and c.endswith(b"DATA\r\n")]


def transactions(sink: SmtpSink) -> list[bytes]:
    """What the client sent, cut before each MAIL (and EHLO), over every connection."""
    wire = b"".join(b"".join(sink.wire[n]) for n in sink.sessions)
    return [t for t in re.split(rb"(?=MAIL FROM:|EHLO )", wire) if t.startswith(b"MAIL")]


async def test_every_outcome_and_every_message_are_those_without_pipelining() -> None:
    outcomes, sent, messages = [], [], []
    for pipelining in (False, True):
        with scripted_sink(pipelining) as sink:
            outcomes.append(await run_script(sink))
            # Reset after every refusal; the 421 closed the connection, as aiosmtplib does.
            assert sink.sessions == [1, 2]
            sent.append(transactions(sink))
            messages.append(sink.messages)
            groups = [g for n in sink.sessions for g in _group(sink.wire[n])]
            # Pipelined: one read per transaction with plain addresses (all but the odd name).
            assert len(groups) == (len(SCRIPT) - 1 if pipelining else 0), sink.wire
    assert outcomes[0] == outcomes[1] == [expected for *_, expected in SCRIPT]
    assert messages[0] == messages[1] and len(messages[1]) == 4
    # Every transaction that got as far as its message put the same bytes on the wire.
    assert ([t for t in sent[0] if b"\r\n.\r\n" in t] == [t for t in sent[1] if b"\r\n.\r\n" in t]
            and len([t for t in sent[1] if b"\r\n.\r\n" in t]) == 6)
    # A refused MAIL or RCPT: pipelined, RCPT and DATA were on their way (and refused too).
    mail, data = b"MAIL FROM:<demo-bounces@lists.example.org>\r\n", b"DATA\r\n"
    assert [t for t in sent[1] if b"\r\n.\r\n" not in t] == [
        b"MAIL FROM:<refused@lists.example.org>\r\nRCPT TO:<m2@example.org>\r\n" + data
        + b"RSET\r\n",
        mail + b"RCPT TO:<gone@example.org>\r\n" + data + b"RSET\r\n",
        mail + b"RCPT TO:<busy@example.org>\r\n" + data + b"RSET\r\n",
        b"MAIL FROM:<later@lists.example.org>\r\nRCPT TO:<m5@example.org>\r\n" + data]
    assert [t for t in sent[0] if b"\r\n.\r\n" not in t] == [
        b"MAIL FROM:<refused@lists.example.org>\r\nRSET\r\n",
        mail + b"RCPT TO:<gone@example.org>\r\nRSET\r\n",
        mail + b"RCPT TO:<busy@example.org>\r\nRSET\r\n",
        b"MAIL FROM:<later@lists.example.org>\r\n"]


async def test_pipelining_over_starttls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over STARTTLS (the TLS transport stands between aiosmtplib and the socket) the group
    still goes in one write and the outcomes are those of the script's first copies."""
    tls = trusted_server_context(tmp_path, monkeypatch)
    with SmtpSink(pipelining=True, tls_context=tls, rcpt_replies={"gone@example.org": 550}) as sink:
        transport = SmtpTransport(sink.host, sink.port, timeout=5, start_tls=True)
        try:
            results = [await transport.send(SENDER, r, READY)
                       for r in ("m1@example.org", "gone@example.org", "m2@example.org")]
        finally:
            await transport.close()
        assert [(r.outcome, r.code) for r in results] == [
            (Outcome.SENT, 250), (Outcome.BOUNCE, 550), (Outcome.SENT, 250)]
        assert [m.rcpt_tos for m in sink.messages] == [("m1@example.org",), ("m2@example.org",)]
        assert set(sink.sessions) == {1}  # one connection (STARTTLS makes it again, for aiosmtpd)
        chunks = sink.wire[1]
        assert any(c.startswith(b"STARTTLS") for c in chunks), chunks
        # After the handshake aiosmtpd reads the decrypted bytes: one chunk per group.
        assert len(_group(chunks)) == 3, chunks


@pytest.mark.parametrize("where", ["mail", "rcpt", "data"])
async def test_a_dropped_connection_is_a_retry_and_the_next_copy_dials_again(
        where: str) -> None:
    with SmtpSink(pipelining=True) as sink:
        if where == "mail":
            sink.mail_replies[SENDER] = DROP
        elif where == "rcpt":
            sink.rcpt_replies["m1@example.org"] = DROP
        else:
            sink.script_data(DROP)
        transport = SmtpTransport(sink.host, sink.port, timeout=5)
        try:
            first = await transport.send(SENDER, "m1@example.org", READY)
            sink.mail_replies.clear()
            sink.rcpt_replies.clear()
            second = await transport.send(SENDER, "m2@example.org", READY)
        finally:
            await transport.close()
        assert (first.outcome, first.code) == (Outcome.RETRY, 0) and "lost" in first.detail
        assert (second.outcome, second.code) == (Outcome.SENT, 250)
        assert sink.sessions == [1, 2] and [m.rcpt_tos for m in sink.messages] == [
            ("m2@example.org",)]


# --- a hand-written server for what aiosmtpd never does -----------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[bytes]], Awaitable[None]]
Start = Callable[[Handler], Awaitable[tuple[int, list[bytes]]]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Start]:
    """Starts a loopback server that greets, answers EHLO with PIPELINING, then runs the
    handler (which appends the lines it read to ``lines``); gives its port and ``lines``."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> tuple[int, list[bytes]]:
        lines: list[bytes] = []

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 raw.example ESMTP\r\n")
            assert (await reader.readline()).startswith(b"EHLO ")
            writer.write(b"250-raw.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            try:
                await handler(reader, writer, lines)
            finally:
                writer.close()

        server = await asyncio.start_server(client, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1], lines

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 lines: list[bytes], *replies: bytes) -> None:
    """Read one line per reply, then answer them all in one write."""
    for _ in replies:
        lines.append(await reader.readline())
    writer.write(b"".join(r + b"\r\n" for r in replies))


async def send(port: int, timeout: float = 5) -> tuple[SendResult, SendResult]:
    transport = SmtpTransport("127.0.0.1", port, timeout=timeout)
    try:
        return (await transport.send(SENDER, "m1@example.org", READY),
                await transport.send(SENDER, "m2@example.org", READY))
    finally:
        await transport.close()


async def test_a_data_accepted_after_a_refused_rcpt_gets_an_empty_message(raw_server: Start) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      lines: list[bytes]) -> None:
        await answer(reader, writer, lines, b"250 ok", b"550 5.1.1 no such user",
                     b"354 go ahead")  # as RFC 2920 warns a server may
        await answer(reader, writer, lines, b"554 5.5.1 no valid recipients")
        await answer(reader, writer, lines, b"250 reset")
        await answer(reader, writer, lines, b"250 ok", b"250 ok", b"354 go ahead")
        while (line := await reader.readline()) not in (b".\r\n", b""):
            lines.append(line)
        lines.append(line)
        writer.write(b"250-queued\r\n250 as 42\r\n")
        await answer(reader, writer, lines, b"221 bye")

    port, lines = await raw_server(handler)
    first, second = await send(port)
    assert (first.outcome, first.code, first.detail) == (Outcome.BOUNCE, 550,
                                                          "5.1.1 no such user")
    assert (second.outcome, second.code, second.detail) == (Outcome.SENT, 250, "queued\nas 42")
    assert lines == [b"MAIL FROM:<demo-bounces@lists.example.org>\r\n",
                     b"RCPT TO:<m1@example.org>\r\n", b"DATA\r\n", b".\r\n", b"RSET\r\n",
                     b"MAIL FROM:<demo-bounces@lists.example.org>\r\n",
                     b"RCPT TO:<m2@example.org>\r\n", b"DATA\r\n",
                     *READY.splitlines(keepends=True), b".\r\n", b"QUIT\r\n"]


async def test_replies_one_byte_at_a_time_are_all_kept(raw_server: Start) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      lines: list[bytes]) -> None:
        for _ in range(2):
            for _ in range(3):
                lines.append(await reader.readline())
            for byte in b"250 ok\r\n250-fine\r\n250 ok\r\n354 go\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0)
            while await reader.readline() not in (b".\r\n", b""):
                pass
            writer.write(b"250 queued\r\n")
        await reader.readline()

    port, _ = await raw_server(handler)
    results = await send(port)
    assert [(r.outcome, r.code) for r in results] == [(Outcome.SENT, 250)] * 2


@pytest.mark.parametrize("trouble", [b"", b"garbage\r\n"])
async def test_a_server_that_stops_answering_or_garbles_is_a_retry(
        raw_server: Start, trouble: bytes) -> None:
    sessions = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      lines: list[bytes]) -> None:
        nonlocal sessions
        sessions += 1
        await answer(reader, writer, lines, b"250 ok")  # MAIL, then nothing or garbage
        writer.write(trouble)
        await reader.read()  # until the client hangs up

    port, _ = await raw_server(handler)
    first, second = await send(port, timeout=0.3)
    assert (first.outcome, first.code) == (second.outcome, second.code) == (Outcome.RETRY, 0)
    assert sessions == 2, "a connection out of step is never used again"


# --- the reply parser and the one-time check ------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"250 ok\r\n", b"250 ok\r\n250-a\r\n250 b\r\n354 go\r\n", b"250-multi\r\n250-line\r\n",
    b"550 5.1.1  spaced  \t\r\n", b"250\r\n", b"250 caf\xc3\xa9 \xff\r\n", b"250 lf only\n",
    b"421 closing\r\n250 par", b"",
])
async def test_replies_are_parsed_as_aiosmtplib_parses_them(data: bytes) -> None:
    replies, used = parse_replies(data)
    reference = SMTPProtocol()
    reference._buffer.extend(data)  # its own parser, reply by reply
    expected = []
    while (reply := reference._read_response_from_buffer()) is not None:
        expected.append(reply)
    assert replies == expected
    assert data[used:] == bytes(reference._buffer)


def test_a_line_without_a_code_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_replies(b"250 ok\r\nhello\r\n")


async def test_without_the_internals_every_command_waits_for_its_reply(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        fresh_check: None) -> None:
    class Later:  # a later aiosmtplib whose SMTP keeps its transport elsewhere
        protocol = None

    monkeypatch.setattr(aiosmtplib, "SMTP", Later)
    with caplog.at_level(logging.WARNING, logger="commonroom.transports"):
        assert not transports.pipelining()
        assert not transports.pipelining()
    said = [r.getMessage() for r in caplog.records if r.name == "commonroom.transports"]
    assert len(said) == 1 and "PIPELINING" in said[0], said


async def test_the_fallback_sends_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transports, "pipelining", lambda: False)
    with scripted_sink(True) as sink:
        outcomes = await run_script(sink)
        assert _group(sink.wire[1]) == []
        fallback = transactions(sink)
    with scripted_sink(False) as sink:
        assert await run_script(sink) == outcomes
        assert transactions(sink) == fallback
