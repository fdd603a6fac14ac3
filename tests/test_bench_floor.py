"""The delivery floor shared by fanout.py and ingest.py; fanout.py's floor kept as it was.

The benchmarks print figures and are never timed here: these tests pin what they send (fanout's
floor byte for byte, ingest's floor copies as a distinct sink counts them), so a change to the
shared floor code fails here rather than in a figure."""

from __future__ import annotations

import hashlib
from collections import Counter

from bench.common import _MESSAGE_ID, FloorCopies, member_email, verp

# sha256 over fanout.py's floor messages (sizes 3000, 3412, 5000; members 1, 2, 97, 10000,
# 100000) as fanout.py built them before the floor moved to bench/common.py (acc4241).
FANOUT_FLOOR_SHA256 = "f317a345704f853735d796266fa65d78aa9fca01f6858f65ae0c041e9a42ffe4"


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
