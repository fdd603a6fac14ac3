"""bench/ingest.py's floors and its clients in their own process; fanout.py's floor kept as it was.

The benchmarks print figures and are never timed here: these tests pin what they send (fanout's
floor byte for byte, ingest's floor copies as a distinct sink counts them) and the lines that
scripts parse, so a change to the shared floor code fails here rather than in a figure."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.common import _MESSAGE_ID, CountingSink, FloorCopies, member_email, verp
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


def test_ingest_with_clients_in_process_and_no_floor() -> None:
    lines = run_ingest("--posts", "10", "--clients", "2", "--clients-in-process", "--no-floor")
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert not any("floor" in line for line in lines), lines
    assert any(line.startswith("  CPU: this process (App + clients)") for line in lines), lines
