"""Chained transactions (RFC 2920 3.1): with ``send_then``, the next copy's MAIL, RCPT and
DATA go in the write of this copy's message, and their replies are read with this one's 250.
Each copy's outcome, and every message the server accepts, are those of the copies sent one
by one; a copy is SENT only on its own 250 after its message."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiosmtplib import SMTPResponse

from listserv import transports
from listserv.transports import Copy, Outcome, SendResult, SmtpTransport, parse_replies
from tests.smtpsink import DROP, SmtpSink
from tests.test_transport_pipelining import (
    READY,
    SCRIPT,
    SENDER,
    Start,
    answer,
    raw_server,  # noqa: F401 (a fixture)
    scripted_sink,
    transactions,
)
from tests.tlscert import trusted_server_context

CHAINED = re.compile(rb"\r\n\.\r\nMAIL FROM:")  # a message's end, then the next group


def chained_writes(sink: SmtpSink) -> int:
    return sum(len(CHAINED.findall(chunk)) for n in set(sink.sessions) for chunk in sink.wire[n])


async def send_all(transport: SmtpTransport, copies: list[Copy]) -> list[SendResult]:
    """Each copy with the next one announced, as the outbox worker's senders do."""
    results = []
    for i, copy in enumerate(copies):
        then = copies[i + 1] if i + 1 < len(copies) else None
        results.append(await transport.send_then(copy.sender, copy.recipient, copy.data, then))
    return results


async def run_chained(sink: SmtpSink, copies: list[Copy]) -> list[tuple[Outcome, int]]:
    transport = SmtpTransport(sink.host, sink.port, timeout=5)
    try:
        results = await send_all(transport, copies)
    finally:
        await transport.close()
    return [(r.outcome, r.code) for r in results]


async def test_every_outcome_and_every_message_are_those_sent_one_by_one() -> None:
    copies = [Copy(s, r, d) for s, r, d, _ in SCRIPT]
    with scripted_sink(True) as sink:
        sink.script_data(250, 554, 451)  # m1, m3, m4
        outcomes = await run_chained(sink, copies)
        assert outcomes == [expected for *_, expected in SCRIPT]
        # The 421 to MAIL closed the connection, as unchained; nothing else dialled again.
        assert sink.sessions == [1, 2]
        assert [m.rcpt_tos for m in sink.messages] == [
            ("m1@example.org",), ("m6@example.org",), ("m7@example.org",), ("m8@example.org",)]
        sent = transactions(sink)
        # m1 -> refused, m3 -> m4, m6 -> m7 (m4's went with later's group, refused at MAIL;
        # m7 -> m8 does not chain: the odd name is left to aiosmtplib).
        assert chained_writes(sink) == 4, sink.wire
    with scripted_sink(True) as sink:
        sink.script_data(250, 554, 451)
        transport = SmtpTransport(sink.host, sink.port, timeout=5)
        try:
            alone = [await transport.send(c.sender, c.recipient, c.data) for c in copies]
        finally:
            await transport.close()
        assert [(r.outcome, r.code) for r in alone] == outcomes
        one_by_one = transactions(sink)
        assert chained_writes(sink) == 0
    # The same messages, byte for byte; the only commands fewer are the RSETs after a
    # refused message (its transaction was over; an RSET would end the next one).
    assert [t for t in sent if b"\r\n.\r\n" in t] == [
        t.replace(b"RSET\r\n", b"") for t in one_by_one if b"\r\n.\r\n" in t]
    assert [t for t in sent if b"\r\n.\r\n" not in t] == [
        t for t in one_by_one if b"\r\n.\r\n" not in t]


async def test_one_read_per_copy_on_the_server() -> None:
    copies = [Copy(SENDER, f"m{i}@example.org", READY) for i in range(5)]
    with SmtpSink(pipelining=True) as sink:
        assert await run_chained(sink, copies) == [(Outcome.SENT, 250)] * 5
        assert sink.sessions == [1] and len(sink.messages) == 5
        assert chained_writes(sink) == 4
        # After the first group: each chunk is a message, its dot and the next group.
        chunks = [c for c in sink.wire[1] if c.startswith(b"MAIL") or b"\r\n.\r\n" in c]
        assert len(chunks) == 5 + 1, chunks  # the first group; the last message alone


async def test_a_refused_message_leaves_the_next_copy_on_the_same_connection() -> None:
    copies = [Copy(SENDER, f"m{i}@example.org", READY) for i in range(3)]
    with SmtpSink(pipelining=True) as sink:
        sink.script_data(554, 250, 250)
        assert await run_chained(sink, copies) == [
            (Outcome.BOUNCE, 554), (Outcome.SENT, 250), (Outcome.SENT, 250)]
        assert sink.sessions == [1]
        assert b"RSET" not in b"".join(sink.wire[1])


async def test_a_421_to_the_message_closes_and_the_next_copy_dials_again() -> None:
    copies = [Copy(SENDER, f"m{i}@example.org", READY) for i in range(2)]
    with SmtpSink(pipelining=True) as sink:
        sink.script_data(421)
        assert await run_chained(sink, copies) == [(Outcome.RETRY, 421), (Outcome.SENT, 250)]
        assert sink.sessions == [1, 2]
        assert [(m.rcpt_tos, m.session) for m in sink.messages] == [(("m1@example.org",), 2)]


async def test_a_drop_after_the_message_is_a_retry_and_the_next_copy_is_sent_once() -> None:
    copies = [Copy(SENDER, f"m{i}@example.org", READY) for i in range(3)]
    with SmtpSink(pipelining=True) as sink:
        sink.script_data(250, DROP)
        assert await run_chained(sink, copies) == [
            (Outcome.SENT, 250), (Outcome.RETRY, 0), (Outcome.SENT, 250)]
        assert [(m.rcpt_tos, m.session) for m in sink.messages] == [
            (("m0@example.org",), 1), (("m2@example.org",), 2)]


async def test_a_drop_before_any_reply_to_the_announced_copy_dials_again_for_it(
        raw_server: Start) -> None:  # noqa: F811 (the fixture)
    sessions = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      lines: list[bytes]) -> None:
        nonlocal sessions
        sessions += 1
        await answer(reader, writer, lines, b"250 ok", b"250 ok", b"354 go")
        while (line := await reader.readline()) not in (b".\r\n", b""):
            lines.append(line)
        writer.write(b"250 queued\r\n")
        await writer.drain()
        if sessions == 1:
            return  # closes: the next copy's group, read or not, is never answered
        await reader.readline()

    port, lines = await raw_server(handler)
    transport = SmtpTransport("127.0.0.1", port, timeout=5)
    first_copy, second_copy = (Copy(SENDER, f"m{i}@example.org", READY) for i in (1, 2))
    try:
        first = await transport.send_then(SENDER, "m1@example.org", READY, second_copy)
        second = await transport.send_then(SENDER, "m2@example.org", READY, None)
    finally:
        await transport.close()
    assert first_copy.recipient == "m1@example.org"
    assert [(r.outcome, r.code) for r in (first, second)] == [(Outcome.SENT, 250)] * 2
    assert sessions == 2
    assert lines.count(b"RCPT TO:<m2@example.org>\r\n") == 1  # as read by the second server


async def test_a_call_for_another_copy_abandons_the_announced_one_unsent() -> None:
    with SmtpSink(pipelining=True) as sink:
        transport = SmtpTransport(sink.host, sink.port, timeout=5)
        try:
            first = await transport.send_then(SENDER, "m1@example.org", READY,
                                              Copy(SENDER, "m2@example.org", READY))
            other = await transport.send(SENDER, "m3@example.org", READY)
        finally:
            await transport.close()
        assert (first.outcome, other.outcome) == (Outcome.SENT, Outcome.SENT)
        assert [m.rcpt_tos for m in sink.messages] == [("m1@example.org",), ("m3@example.org",)]
        assert sink.sessions == [1, 2]


async def test_closing_with_a_copy_announced_sends_no_quit_and_delivers_nothing_more() -> None:
    with SmtpSink(pipelining=True) as sink:
        transport = SmtpTransport(sink.host, sink.port, timeout=5)
        await transport.send_then(SENDER, "m1@example.org", READY,
                                  Copy(SENDER, "m2@example.org", READY))
        await transport.close()
        for _ in range(50):
            if not sink.open_connections:
                break
            await asyncio.sleep(0.01)
        assert [m.rcpt_tos for m in sink.messages] == [("m1@example.org",)]
        assert b"QUIT" not in b"".join(sink.wire[1])


def test_replies_seen_before_are_parsed_the_same_and_the_cache_stays_bounded() -> None:
    group = b"250 2.0.0 OK\r\n250 OK\r\n250-two\r\n250 lines\r\n354 End data\r\n"
    first = parse_replies(group)
    assert parse_replies(group) == first == parse_replies(bytearray(group))
    assert [r.message for r in first[0]] == ["2.0.0 OK", "OK", "two\nlines", "End data"]
    queued = [b"250 2.0.0 Ok: queued as %d\r\n" % n for n in range(2 * transports.ONE_LINE_CACHE)]
    for line in queued:  # a queue id in each: every one new
        assert parse_replies(line + b"354 go\r\n") == (
            [SMTPResponse(250, f"2.0.0 Ok: queued as {line.split()[-1].decode()}"),
             SMTPResponse(354, "go")], len(line) + 8)
    assert len(transports._ONE_LINE) <= transports.ONE_LINE_CACHE
    assert parse_replies(group) == first


async def test_chaining_over_starttls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over STARTTLS the replies' reader stays on the TLS transport between copies."""
    tls = trusted_server_context(tmp_path, monkeypatch)
    copies = [Copy(SENDER, f"m{i}@example.org", READY) for i in range(4)]
    with SmtpSink(pipelining=True, tls_context=tls, rcpt_replies={"m2@example.org": 550}) as sink:
        transport = SmtpTransport(sink.host, sink.port, timeout=5, start_tls=True)
        try:
            results = await send_all(transport, copies)
        finally:
            await transport.close()
        assert [(r.outcome, r.code) for r in results] == [
            (Outcome.SENT, 250), (Outcome.SENT, 250), (Outcome.BOUNCE, 550), (Outcome.SENT, 250)]
        assert [m.rcpt_tos for m in sink.messages] == [
            ("m0@example.org",), ("m1@example.org",), ("m3@example.org",)]
        # One connection (STARTTLS makes it again, for aiosmtpd); m0 -> m1, m1 -> m2 chained.
        assert set(sink.sessions) == {1} and chained_writes(sink) == 2
