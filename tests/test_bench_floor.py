"""bench/ingest.py's floors and its clients in their own process; fanout.py's floor kept as it was.

The benchmarks print figures and are never timed here: these tests pin what they send (fanout's
floor byte for byte, ingest's floor copies as a distinct sink counts them) and the lines that
scripts parse, so a change to the shared floor code fails here rather than in a figure."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import smtplib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosmtplib
import pytest

from bench.common import (
    _MESSAGE_ID,
    SINKS,
    CountingSink,
    FloorCopies,
    member_email,
    run_floor,
    serve_sink,
    verp,
)
from bench.fanout import LINE as FANOUT_LINE
from bench.ingest import ClientPlan, ClientProcess, send_all

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("COMMONROOM_TEST_PG_URL", "")

# sha256 over fanout.py's floor messages (sizes 3000, 3412, 5000; members 1, 2, 97, 10000,
# 100000) as fanout.py built them before the floor moved to bench/common.py (acc4241).
FANOUT_FLOOR_SHA256 = "f317a345704f853735d796266fa65d78aa9fca01f6858f65ae0c041e9a42ffe4"
LAST_LINE = re.compile(r"^ingest posts=(\d+) seconds=(\S+) posts_per_s=(\S+) "
                       r"delivered_posts_per_s=(\S+) p99_ms=(\d+)$")


def test_fanout_floor_messages_are_the_ones_fanout_sent_before() -> None:
    digest = hashlib.sha256()
    for size in (3000, 3412, 5000):
        copies = FloorCopies(count=100_000, size=size)
        for i in (1, 2, 97, 10_000, 100_000):
            assert copies.envelope(i) == (verp(i), member_email(i))
            message = copies.message(i)
            assert len(message) == size
            digest.update(message)
    assert digest.hexdigest() == FANOUT_FLOOR_SHA256


def test_ingest_floor_copies_come_in_posts_a_distinct_sink_counts_once() -> None:
    copies = FloorCopies(count=3 * 10, size=3412, per_post=10, run_id="t1")
    keys = []
    for i in range(1, copies.count + 1):
        sender, rcpt = copies.envelope(i)
        message = copies.message(i)
        assert abs(len(message) - 3412) <= 4, len(message)
        found = _MESSAGE_ID.search(message[:message.find(b"\r\n\r\n")])
        assert found is not None
        keys.append((found.group(1), rcpt))
        assert sender == verp((i - 1) % 10 + 1)
    assert len(set(keys)) == 30  # every copy counted once by CountingSink(distinct=True)
    assert Counter(msgid for msgid, _ in keys) == Counter({msgid: 10 for msgid, _ in keys})
    assert {rcpt for _, rcpt in keys} == {member_email(m) for m in range(1, 11)}
    mean = sum(len(copies.message(i)) for i in range(1, 31)) / 30
    assert abs(mean - 3412) < 1


def test_clients_in_their_own_process_report_every_post_to_the_parent() -> None:
    bare = CountingSink()
    try:
        bare.expect(12)
        plan = ClientPlan(posts=12, clients=3, run_id="t2", policy=False, ports=(bare.port,))
        clients = ClientProcess(plan)  # started, imports done, nothing sent yet
        assert bare.count.value == 0
        before = time.perf_counter()
        sent = clients.send(timeout=60)
        assert bare.wait(10)
    finally:
        bare.stop()
    assert sent.errors == []
    assert len(sent.latencies) == 12
    assert before < sent.started < sent.finished < time.perf_counter()  # one clock for both
    assert sent.pid != os.getpid()
    assert sent.cpu > 0
    assert bare.count.value == 12


def test_clients_in_this_process_keep_the_old_way() -> None:
    bare = CountingSink()
    try:
        bare.expect(5)
        sent = send_all(ClientPlan(posts=5, clients=2, run_id="t3", policy=False,
                                   ports=(bare.port,)))
        assert bare.wait(10)
    finally:
        bare.stop()
    assert sent.errors == [] and len(sent.latencies) == 5 and sent.pid == os.getpid()


def run_ingest(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_ingest_prints_both_floors_before_its_last_line(db: str) -> None:
    if db == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL tests need COMMONROOM_TEST_PG_URL")
    lines = run_ingest("--posts", "20", "--clients", "2",
                       "--db", PG_URL if db == "postgres" else "sqlite")
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert lines[-4].startswith("  accept floor: 20 posts"), lines[-4]
    assert lines[-3].startswith("  delivery floor: 200 copies"), lines[-3]
    assert lines[-2].startswith("  against the floors: accepted "), lines[-2]
    assert any(line.startswith("  CPU: clients (own process)") for line in lines), lines


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_fanout_with_the_delivery_process_prints_its_cpu_and_the_same_last_line(db: str) -> None:
    if db == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL tests need COMMONROOM_TEST_PG_URL")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fanout.py"), "--members", "30",
                           "--no-floor", "--delivery-process",
                           "--db", PG_URL if db == "postgres" else "sqlite"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert FANOUT_LINE.match(lines[-1]), lines[-1]
    assert "delivery process" in lines[0], lines[0]
    assert any(re.search(r"30 rows sent", line) for line in lines), lines
    assert any(re.match(r"  CPU during the fan-out: App process \S+ s, delivery process "
                        r"\S+ s, sink", line) for line in lines), lines


def test_ingest_with_clients_in_process_and_no_floor() -> None:
    lines = run_ingest("--posts", "10", "--clients", "2", "--clients-in-process", "--no-floor")
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert not any("floor" in line for line in lines), lines
    assert any(line.startswith("  CPU: this process (App + clients)") for line in lines), lines


# --- the counting sinks: the lean one (the default) and aiosmtpd, side by side ---------------

Got = list[tuple[list[str], bytes]]

# A body whose lines start with '.', '..', a lone '.' line inside, and no final newline issue.
DOTTED = (b"From: a@council.example\r\nTo: bench@lists.example.org\r\nSubject: dots\r\n"
          b"Message-ID: <dots-1@council.example>\r\n\r\n"
          b".\r\n..\r\n.hidden line\r\n..two dots\r\nmiddle . dot\r\n.\r\nlast\r\n")


async def _with_sink(kind: str, client: Callable[[int], Awaitable[None]]) -> Got:
    """Run ``client(port)`` against an in-process sink of ``kind``; what it was handed."""
    got: Got = []
    server = await serve_sink(kind, lambda rcpts, content: got.append((list(rcpts), content)))
    try:
        await client(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
    return got


def both(client: Callable[[int], Awaitable[None]]) -> Got:
    """What the lean sink was handed, having checked aiosmtpd was handed the same."""
    lean, reference = (asyncio.run(_with_sink(kind, client)) for kind in SINKS)
    assert lean == reference
    return lean


def test_both_sinks_get_the_same_copies_from_aiosmtplib_dots_unstuffed() -> None:
    copies = FloorCopies(count=6, size=3412, per_post=3, run_id="t4")

    async def client(port: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                               local_hostname="localhost")
        await smtp.connect()
        await smtp.ehlo()
        assert smtp.supports_extension("pipelining") or True
        for i in range(1, copies.count + 1):
            await smtp.mail(copies.envelope(i)[0])
            await smtp.rcpt(copies.envelope(i)[1])
            await smtp.data(copies.message(i))
        await smtp.mail("a@council.example", options=["BODY=8BITMIME"])
        await smtp.rcpt("b@council.example")
        await smtp.rcpt("c@council.example")
        await smtp.data(DOTTED)
        await smtp.quit()

    got = both(client)
    assert [c for _, c in got[:6]] == [copies.message(i) for i in range(1, 7)]
    assert [r for r, _ in got[:6]] == [[copies.envelope(i)[1]] for i in range(1, 7)]
    assert got[6] == (["b@council.example", "c@council.example"], DOTTED)


def test_both_sinks_get_the_same_from_smtplib_helo_rset_noop() -> None:
    async def client(port: int) -> None:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.helo("client.example")
                assert s.noop()[0] == 250
                s.mail("x@council.example")
                s.rcpt("nobody@council.example")
                assert s.rset()[0] == 250
                s.sendmail("a@council.example", ["b@council.example"], DOTTED)
                s.sendmail("<>", ["Mixed.Case@Council.example"], b"Subject: x\r\n\r\nhi\r\n")
                s.ehlo("client.example")
                assert s.has_extn("size") and s.has_extn("8bitmime")
                assert s.mail("a@council.example", ["SIZE=40000000"])[0] == 552
                assert s.docmd("DATA")[0] == 503
                s.sendmail("a@council.example", ["b@council.example"], b"\r\n" * 3 + b".")

        await asyncio.to_thread(send)

    got = both(client)
    assert got == [(["b@council.example"], DOTTED),
                   (["Mixed.Case@Council.example"], b"Subject: x\r\n\r\nhi\r\n"),
                   (["b@council.example"], b"\r\n" * 3 + b".\r\n")]


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 64])
def test_a_message_split_across_reads_and_pipelined_commands(step: int) -> None:
    """Every byte boundary of the end marker and of the stuffed lines falls between two reads
    at some step; the lean sink advertises PIPELINING, so commands come in one write."""
    stuffed = DOTTED.replace(b"\r\n.", b"\r\n..")

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def reply() -> bytes:
            return await asyncio.wait_for(reader.readline(), 10)

        await reply()
        writer.write(b"EHLO client.example\r\n")
        while not (await reply()).startswith(b"250 "):
            pass
        commands = (b"MAIL FROM:<a@council.example>\r\nRCPT TO:<b@council.example>\r\n"
                    b"RCPT TO:<c@council.example>\r\nDATA\r\n")
        for start in range(0, len(commands), step):
            writer.write(commands[start:start + step])
            await writer.drain()
            await asyncio.sleep(0)
        replies = [await reply() for _ in range(4)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354"], replies
        wire = stuffed + b".\r\nNOOP\r\nQUIT\r\n"
        for start in range(0, len(wire), step):
            writer.write(wire[start:start + step])
            await writer.drain()
            await asyncio.sleep(0)
        replies = [await reply() for _ in range(3)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"221"], replies
        writer.close()

    got = both(client)
    assert got == [(["b@council.example", "c@council.example"], DOTTED)]


def test_lean_sink_refuses_what_aiosmtpd_refuses() -> None:
    long_line = b"Subject: x\r\n\r\n" + b"y" * 1000 + b"\r\n"

    async def client(port: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                               local_hostname="localhost")
        await smtp.connect()
        await smtp.ehlo()
        await smtp.mail("a@council.example")
        await smtp.rcpt("b@council.example")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.data(long_line)
        assert refused.value.code == 500
        await smtp.rset()
        with pytest.raises(aiosmtplib.SMTPResponseException) as nested:
            await smtp.mail("a@council.example")
            await smtp.mail("a@council.example")
        assert nested.value.code == 503
        await smtp.quit()

    assert both(client) == []


@pytest.mark.parametrize("kind", SINKS)
def test_a_distinct_sink_counts_a_copy_sent_twice_as_a_duplicate(kind: str) -> None:
    sink = CountingSink(distinct=True, kind=kind)
    copies = FloorCopies(count=20, size=3412, per_post=10, run_id="t5")
    try:
        asyncio.run(run_floor(sink, copies, 2, 30))
        assert (sink.count.value, sink.duplicates.value) == (20, 0)
        nbytes = sink.nbytes.value
        assert nbytes == sum(len(copies.message(i)) for i in range(1, 21))
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as s:
            s.sendmail(*copies.envelope(3), copies.message(3))  # again: a duplicate
            s.sendmail(copies.envelope(3)[0], [copies.envelope(3)[1].upper()],
                       copies.message(3))  # a recipient's case is not a new copy
        assert (sink.count.value, sink.duplicates.value) == (20, 2)
        sink.expect(1)  # a new run forgets the pairs seen
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as s:
            s.sendmail(*copies.envelope(3), copies.message(3))
        assert sink.wait(10)
        assert (sink.count.value, sink.duplicates.value) == (1, 0)
    finally:
        sink.stop()


def test_per_copy_cpu_of_each_sink() -> None:
    """Printed, not asserted (run with -s): the sink's CPU per copy of ingest's floor."""
    copies = FloorCopies(count=3000, size=3412, per_post=10, run_id="t6")
    for kind in SINKS:
        sink = CountingSink(distinct=True, kind=kind)
        try:
            seconds, sender_cpu, sink_cpu = asyncio.run(run_floor(sink, copies, 4, 120))
        finally:
            sink.stop()
        assert sink.count.value == copies.count
        print(f"\n  sink {kind}: {copies.count} copies in {seconds:.2f} s; CPU a copy: sender "
              f"{sender_cpu / copies.count * 1000:.3f} ms, sink "
              f"{sink_cpu / copies.count * 1000:.3f} ms; load {os.getloadavg()[0]:.2f}")
