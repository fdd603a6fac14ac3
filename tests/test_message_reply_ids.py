"""``message.reply_ids`` (the archive's thread pages read it for every post of a thread): its
shortcut parses only In-Reply-To and References, and must read them exactly as the full header
parse (``parse``, used when the post arrived) does, odd header blocks included."""

from __future__ import annotations

import pytest

from listserv.message import _raw_headers, _reply_ids, parse, reply_ids

HEAD = b"From: a@x\r\nTo: l@x\r\nSubject: s\r\nMessage-ID: <me@x>\r\n"

CASES = {
    "plain": HEAD + b"In-Reply-To: <p@x>\r\nReferences: <r@x> <p@x>\r\n\r\nbody\r\n",
    "folded": HEAD + b"References: <a@x>\r\n <b@x>\r\n\t<c@x>\r\nX: y\r\n\r\nb",
    "lf only": b"Message-ID: <me@x>\nreferences: <a@x>\nIN-REPLY-TO: <b@x>\n\nbody",
    "none": HEAD + b"\r\nIn-Reply-To: <not-a-header@x>\r\n",
    "bad line ends the headers": HEAD + b"Not a header line\r\nReferences: <a@x>\r\n\r\n",
    "name with a space": HEAD + b"X Bad: 1\r\nIn-Reply-To: <a@x>\r\n\r\n",
    "indented first line": b" X: 1\r\nReferences: <a@x>\r\n\r\n",
    "no body, no newline": HEAD + b"In-Reply-To: <a@x>",
    "no body": HEAD + b"In-Reply-To: <a@x>\r\n",
    "two In-Reply-To": HEAD + b"In-Reply-To: junk\r\nIn-Reply-To: <b@x>\r\n\r\n",
    "itself": HEAD + b"In-Reply-To: <me@x>\r\nReferences: <me@x> <a@x>\r\n\r\n",
    "non-ascii": HEAD + "Subject: café\r\nReferences: <é@x> <a@x>\r\n\r\n".encode(),
    "lookalike": HEAD + b"X-References: <no@x>\r\nReferences-Old: <no2@x>\r\n\r\n",
    "empty": b"",
}


def _full(raw: bytes, message_id: str) -> tuple[str | None, tuple[str, ...]]:
    items, _ = _raw_headers(raw)
    in_reply_to, refs = _reply_ids(items, message_id, [])
    return in_reply_to, tuple(refs)


@pytest.mark.parametrize("name", list(CASES))
def test_the_shortcut_reads_what_the_full_parse_reads(name: str) -> None:
    raw = CASES[name]
    assert reply_ids(raw, "me@x") == _full(raw, "me@x")
    parsed = parse(raw, domain="x") if raw else None
    if parsed is not None and parsed.message_id == "me@x":
        assert reply_ids(raw, "me@x") == (parsed.in_reply_to, tuple(parsed.references))


def test_what_the_cases_find() -> None:
    assert reply_ids(CASES["plain"], "me@x") == ("p@x", ("r@x", "p@x"))
    assert reply_ids(CASES["folded"], "me@x") == (None, ("a@x", "b@x", "c@x"))
    assert reply_ids(CASES["bad line ends the headers"], "me@x") == (None, ())
    assert reply_ids(CASES["lookalike"], "me@x") == (None, ())
