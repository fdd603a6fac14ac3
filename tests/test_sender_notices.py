"""Whether a post's sender may be sent a held or rejected notice (issue 7.11). Pure."""

from __future__ import annotations

import pytest

from listserv.sender_notices import SenderFacts, marks, may_notify

OK = SenderFacts(automatic=False, banned=False, dmarc_failed=False, sent_last_day=0)


@pytest.mark.parametrize("facts,allowed", [
    (OK, True),
    (SenderFacts(True, False, False, 0), False),
    (SenderFacts(False, True, False, 0), False),
    (SenderFacts(False, False, True, 0), False),
    (SenderFacts(False, False, False, 1), False),  # one per address per day
    (SenderFacts(False, False, False, 1, by_a_person=True), True),  # a moderator's rejection
    (SenderFacts(False, True, False, 0, by_a_person=True), False),  # but never to a banned one
])
def test_may_notify(facts: SenderFacts, allowed: bool) -> None:
    assert (may_notify(facts) is None) is allowed


HEAD = b"From: dan@elsewhere.example\r\nSubject: x\r\n"


@pytest.mark.parametrize("headers,envelope_from,expected", [
    (b"", "dan@elsewhere.example", (False, False)),
    (b"", "", (True, False)),  # null envelope sender: a bounce or other automatic mail
    (b"Auto-Submitted: auto-replied\r\n", "dan@elsewhere.example", (True, False)),
    (b"Auto-Submitted: no\r\n", "dan@elsewhere.example", (False, False)),
    (b"Precedence: bulk\r\n", "dan@elsewhere.example", (True, False)),
    (b"Authentication-Results: mx.lists.example.org;\r\n dkim=none; spf=softfail\r\n"
     b" smtp.mailfrom=elsewhere.example; dmarc=fail (p=reject dis=none)\r\n"
     b" header.from=elsewhere.example\r\n", "dan@elsewhere.example", (False, True)),
    (b"Authentication-Results: mx.lists.example.org; dmarc=pass header.from=x\r\n",
     "dan@elsewhere.example", (False, False)),
    (b"Authentication-Results: mx.lists.example.org; dmarc=failure-not-a-result\r\n",
     "dan@elsewhere.example", (False, False)),
])
def test_marks_read_from_the_post(headers: bytes, envelope_from: str,
                                  expected: tuple[bool, bool]) -> None:
    assert marks(HEAD + headers + b"\r\nbody\r\n", envelope_from) == expected
