"""bounce_parse: real-world bounce shapes read as what they are (tests/data/bounces/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from listserv.bounce_parse import ReportKind, parse_report, reply_status

DATA = Path(__file__).parent / "data" / "bounces"

# sample, VERP recipient, kind, how, failures (recipient, status)
CASES = [
    ("rfc3464_simple.eml", "", ReportKind.FAILURE, "dsn", [("alice@example.org", "4.0.0")]),
    ("postfix_5.1.1.eml", "", ReportKind.FAILURE, "dsn", [("alice@example.org", "5.1.1")]),
    ("postfix_5.7.1_policy.eml", "", ReportKind.FAILURE, "dsn",
     [("alice@example.org", "5.7.1")]),
    ("postfix_delayed.eml", "alice@example.org", ReportKind.WARNING, "dsn", []),
    ("exim_plain.eml", "", ReportKind.FAILURE, "flufl", [("carol@example.com", "5.1.1")]),
    ("exchange_5.1.10.eml", "", ReportKind.FAILURE, "dsn",
     [("dave@contoso.example", "5.1.10")]),
    ("gmail_5.1.1.eml", "", ReportKind.FAILURE, "dsn", [("erin@gmail.example", "5.1.1")]),
    ("gmail_5.7.1.eml", "", ReportKind.FAILURE, "dsn", [("erin@gmail.example", "5.7.26")]),
    ("out_of_office.eml", "alice@example.org", ReportKind.AUTOREPLY, None, []),
    ("challenge_response.eml", "carol@example.com", ReportKind.AUTOREPLY, None, []),
    ("unreadable.eml", "gina@weird.example", ReportKind.FAILURE, "verp",
     [("gina@weird.example", "5.0.0")]),
    ("unreadable.eml", "", ReportKind.UNKNOWN, "", []),
]


@pytest.mark.parametrize(("sample", "verp", "kind", "how", "failures"), CASES)
def test_sample(sample: str, verp: str, kind: ReportKind, how: str | None,
                failures: list[tuple[str, str]]) -> None:
    report = parse_report((DATA / sample).read_bytes(), verp)
    assert report.kind is kind
    if how is not None:
        assert report.how == how
    assert [(f.recipient, f.status) for f in report.failures] == failures


def test_policy_and_permanent() -> None:
    [f] = parse_report((DATA / "postfix_5.7.1_policy.eml").read_bytes()).failures
    assert f.permanent and f.policy
    assert "spamhaus" in f.diagnostic


def test_arf_names_the_complainant() -> None:
    report = parse_report((DATA / "arf_abuse.eml").read_bytes())
    assert report.kind is ReportKind.COMPLAINT
    assert report.complainant == "frank@hotmail.example"
    assert report.how == "arf: abuse"


@pytest.mark.parametrize("raw", [b"", b"\x00\xff garbage", b"Content-Type: multipart/report;"
                                 b" report-type=delivery-status\n\nno boundary"])
def test_hostile_input_never_raises(raw: bytes) -> None:
    assert parse_report(raw).kind is ReportKind.UNKNOWN


# An SMTP reply from the smarthost (code, text) read as the RFC 3463 status it means.
REPLIES = [
    (550, "5.1.1 No such user", "5.1.1"),
    (554, "5.7.1 Rejected", "5.7.1"),
    (552, "5.3.4 Message too big", "5.3.4"),
    (550, "No such user here", "5.0.0"),  # no enhanced code: the class alone
    (451, "4.3.0 Try again later", "4.3.0"),
    (421, "Service not available", "4.0.0"),
    (550, "4.2.2 mailbox full", "5.0.0"),  # a code that contradicts the reply's class
    (0, "connection refused", "4.0.0"),  # no reply at all: only ever a retry, never final
]


@pytest.mark.parametrize(("code", "text", "status"), REPLIES)
def test_reply_status(code: int, text: str, status: str) -> None:
    assert reply_status(code, text) == status
