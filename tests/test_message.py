"""listserv.message: header facts, first text and Message-ID stamping, by hand and on real mail."""

from __future__ import annotations

import base64
import mailbox
import random
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

import pytest

from listserv.message import (
    _WELL_FORMED,
    MAX_ID_LENGTH,
    ParsedMessage,
    _header_block,
    _parsed_headers,
    _raw_headers,
    add_date,
    first_text,
    html_to_text,
    parse,
    set_message_id,
    shorten_id,
)

DOMAIN = "lists.example.org"


def mail(*headers: str, body: str = "Hello.\n", eol: str = "\n") -> bytes:
    """A message from header lines (folding written as "\\n\\t") and a body."""
    head = eol.join(h.replace("\n", eol) for h in headers)
    return (head + eol + eol + body.replace("\n", eol)).encode("utf-8")


def p(*headers: str) -> ParsedMessage:
    return parse(mail(*headers), domain=DOMAIN)


# --- Message-ID ----------------------------------------------------------------------------

LONG = "x" * 300 + "@example.com"

MESSAGE_IDS: list[tuple[list[str], str, str | None]] = [
    # (header lines, expected id, expected defect or None)
    (["Message-ID: <abc@example.com>"], "abc@example.com", None),
    (["MESSAGE-ID:   <abc@example.com>  "], "abc@example.com", None),
    (["Message-Id: abc@example.com"], "abc@example.com", "Message-ID without angle brackets"),
    (["Message-Id:102.10200000000105"], "102.10200000000105", "Message-ID without angle brackets"),
    (["Message-ID: <a@example.com> <b@example.com>"], "a@example.com",
     "several ids in one Message-ID header"),
    (["Message-ID: (sent by Foo) <abc@example.com>"], "abc@example.com", None),
    (["Message-ID: <abc.def\n @example.com>"], "abc.def@example.com", None),
    (["Message-ID: <a@example.com>", "Message-ID: <b@example.com>"], "a@example.com",
     "several Message-ID headers"),
    (["Message-ID: <>", "Message-ID: <b@example.com>"], "b@example.com",
     "several Message-ID headers"),
    ([f"Message-ID: <{LONG}>"], shorten_id(LONG),
     f"Message-ID longer than {MAX_ID_LENGTH} characters"),
]


@pytest.mark.parametrize(("headers", "expected", "defect"), MESSAGE_IDS)
def test_message_id(headers: list[str], expected: str, defect: str | None) -> None:
    parsed = p(*headers, "Subject: x")
    assert parsed.message_id == expected
    assert not parsed.message_id_generated
    if defect:
        assert defect in parsed.defects
    else:
        assert parsed.defects == ("no From", "no Date")


@pytest.mark.parametrize(
    ("headers", "defect"),
    [
        (["Subject: no id"], "no Message-ID"),
        (["Message-ID:", "Subject: x"], "unusable Message-ID"),
        (["Message-ID: <>"], "unusable Message-ID"),
        (["Message-ID:    "], "unusable Message-ID"),
        (["Message-ID: this is not an id"], "unusable Message-ID"),
        (["Message-ID: <a\x01b@example.com>"], "unusable Message-ID"),
    ],
)
def test_message_id_generated(headers: list[str], defect: str) -> None:
    parsed = p(*headers)
    assert parsed.message_id_generated
    assert parsed.message_id.endswith("@" + DOMAIN)
    assert len(parsed.message_id) > len(DOMAIN) + 8
    assert "<" not in parsed.message_id
    assert defect in parsed.defects
    assert p(*headers).message_id != parsed.message_id  # random, not derived from the content


def test_long_ids_shorten_the_same_everywhere_so_replies_still_thread() -> None:
    original = p(f"Message-ID: <{LONG}>")
    reply = p("Message-ID: <r@example.com>", f"In-Reply-To: <{LONG}>", f"References: <{LONG}>")
    assert len(original.message_id) <= MAX_ID_LENGTH
    assert reply.in_reply_to == original.message_id
    assert reply.references == (original.message_id,)


# --- In-Reply-To and References ------------------------------------------------------------

THREADING: list[tuple[list[str], str | None, tuple[str, ...]]] = [
    # (header lines, in_reply_to, references)
    (["In-Reply-To: <p@example.com>"], "p@example.com", ("p@example.com",)),
    (["In-Reply-To: p@example.com"], "p@example.com", ("p@example.com",)),
    (["In-Reply-To: <p@example.com> (from Joe at Jan 1)"], "p@example.com", ("p@example.com",)),
    (["In-Reply-To: <p@example.com>; from joe@example.net on Fri, Nov 16, 2001"],
     "p@example.com", ("p@example.com",)),
    (['In-Reply-To: Your message of "Tue, 01 Jan 2002 10:00:00 +0100"\n\t<p@example.com>'],
     "p@example.com", ("p@example.com",)),
    (['In-Reply-To: "Joe <joe@example.net>" <p@example.com>'], "p@example.com",
     ("p@example.com",)),
    (["In-Reply-To: (Joe's message of Tue <joe@example.net>) <p@example.com>"],
     "p@example.com", ("p@example.com",)),
    (["In-Reply-To: <p@example.com> <q@example.com>"], "p@example.com", ("p@example.com",)),
    (["In-Reply-To: Your message of Tue, 01 Jan 2002 10:00:00 +0100"], None, ()),
    (["In-Reply-To:"], None, ()),
    (["In-Reply-To: <>"], None, ()),
    (["References: <a@example.com> <b@example.com>"], None, ("a@example.com", "b@example.com")),
    (["References: <a@example.com>,\n\t<b@example.com>"], None,
     ("a@example.com", "b@example.com")),
    (["References: <a@example.com> (comment <z@example.com>)\n (more) <b@example.com>"], None,
     ("a@example.com", "b@example.com")),
    (["References: <invalid.   \n something@example.com>"], None,
     ("invalid.something@example.com",)),
    (["References: <a@example.com> <a@example.com> <b@example.com> <a@example.com>"], None,
     ("a@example.com", "b@example.com")),
    (["References: a@example.com b@example.com"], None, ("a@example.com", "b@example.com")),
    (["References: <a@example.com>", "References: <b@example.com>"], None,
     ("a@example.com", "b@example.com")),
    (["References: <a@example.com> <b@example.com>", "In-Reply-To: <b@example.com>"],
     "b@example.com", ("a@example.com", "b@example.com")),
    (["References: <a@example.com>", "In-Reply-To: <c@example.com>"], "c@example.com",
     ("a@example.com", "c@example.com")),
    (["References: <self@example.com> <a@example.com>"], None, ("a@example.com",)),
    (["In-Reply-To: <self@example.com>"], None, ()),
    (["References:"], None, ()),
    (["References: none of these are ids"], None, ()),
]


@pytest.mark.parametrize(("headers", "in_reply_to", "references"), THREADING)
def test_threading_headers(
    headers: list[str], in_reply_to: str | None, references: tuple[str, ...]
) -> None:
    parsed = p("Message-ID: <self@example.com>", *headers)
    assert parsed.in_reply_to == in_reply_to
    assert parsed.references == references
    assert parsed.message_id not in parsed.references


@pytest.mark.parametrize(
    ("value", "defect"),
    [
        ("", "empty In-Reply-To"),
        ("   ", "empty In-Reply-To"),
        ("Your message of Tue", "In-Reply-To without an id"),
        ("<self@example.com>", "In-Reply-To names the message itself"),
    ],
)
def test_in_reply_to_defects(value: str, defect: str) -> None:
    assert defect in p("Message-ID: <self@example.com>", f"In-Reply-To: {value}").defects


# --- Subject -------------------------------------------------------------------------------

KANG = "康庭".encode()  # two characters, three bytes each
SPLIT_WORDS = " ".join(
    f"=?utf-8?b?{base64.b64encode(part).decode()}?=" for part in (KANG[:2], KANG[2:])
)

SUBJECTS: list[tuple[bytes, str]] = [
    (b"Subject: Hello", "Hello"),
    (b"Subject: Hello\n   folded\tand   spaced  ", "Hello folded and spaced"),
    (b"Subject:", ""),
    (b"Subject: =?utf-8?q?caf=C3=A9?=", "café"),
    (b"Subject: =?UTF-8?Q?caf=C3=A9_au_lait?=", "café au lait"),
    (b"Subject: =?iso-8859-1?q?caf=E9?=", "café"),
    (b"Subject: =?utf-8*en?q?hello?=", "hello"),
    (b"Subject: Re: =?utf-8?q?caf=C3=A9?= time", "Re: café time"),
    (b"Subject: =?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
    (b"Subject: =?utf-8?q?a?=\n =?iso-8859-1?q?b?=", "ab"),
    (("Subject: " + SPLIT_WORDS).encode(), "康庭"),
    (b"Subject: =?x-unknown?q?caf=C3=A9?=", "café"),
    (b"Subject: =?base64?q?abc?=", "abc"),
    (b"Subject: =?utf-8?b?!!!?=", ""),
    (b"Subject: =?utf-8?b?Y2Fmw6k?=", "café"),  # padding missing
    (b"Subject: =?utf-8?x?abc?=", "=?utf-8?x?abc?="),
    (b"Subject: =?utf-8?q?caf=C3?=", "caf\ufffd"),
    ("Subject: Säying Hello".encode(), "Säying Hello"),
    (b"Subject: caf\xe9", "café"),
    (b"Subject: \xff\xfe\x00", "ÿþ\x00"),
]


@pytest.mark.parametrize(("line", "expected"), SUBJECTS)
def test_subject(line: bytes, expected: str) -> None:
    assert parse(line + b"\n\nbody\n", domain=DOMAIN).subject == expected


def test_subject_absent() -> None:
    assert p("Message-ID: <a@example.com>").subject == ""


# --- From ----------------------------------------------------------------------------------

FROMS: list[tuple[str, str | None, str]] = [
    ("Joe Bloggs <Joe@Example.COM>", "Joe@example.com", "Joe Bloggs"),
    ('"Bloggs, Joe" <joe@example.com>', "joe@example.com", "Bloggs, Joe"),
    ('"Joe \\"JB\\" Bloggs" <joe@example.com>', "joe@example.com", 'Joe "JB" Bloggs'),
    ("=?utf-8?q?J=C3=B8rn_St=C3=B8ylen?= <jorn@example.no>", "jorn@example.no", "Jørn Støylen"),
    ("joe@example.com", "joe@example.com", ""),
    ("<joe@example.com>", "joe@example.com", ""),
    ("joe@example.com (Joe Bloggs)", "joe@example.com", "Joe Bloggs"),
    ("joe at example.com (Joe Bloggs)", "joe@example.com", "Joe Bloggs"),
    ("Joe Bloggs <joe at example.com>", "joe@example.com", "Joe Bloggs"),
    ("Ting-Wei Kang =?utf-8?b?5bq35bqt57at?=      ting-wei.kang@MEDIATEK.COM",
     "ting-wei.kang@mediatek.com", "Ting-Wei Kang 康庭維"),
    ("Joe <joe@example.com>, Ann <ann@example.com>", "joe@example.com", "Joe"),
    ("Jöhn Döe <jdöe@mächine.example>", "jdöe@mächine.example", "Jöhn Döe"),
    ("undisclosed", None, ""),
    ("MAILER DAEMON <>", None, "MAILER DAEMON"),
    ("develop!nextmime@ebony@sblab.att.com", None, ""),
    ("joe@gmail.... (Joe)", None, "Joe"),
]


@pytest.mark.parametrize(("value", "address", "name"), FROMS)
def test_from(value: str, address: str | None, name: str) -> None:
    parsed = p(f"From: {value}")
    assert (parsed.from_address, parsed.from_name) == (address, name)
    assert ("unparseable From" in parsed.defects) is (address is None)


def test_from_absent() -> None:
    parsed = p("Subject: x")
    assert (parsed.from_address, parsed.from_name) == (None, "")
    assert "no From" in parsed.defects


def test_from_header_variations_from_real_archives(corpus: Path) -> None:
    lines = (corpus / "bigbang-list-archives" / "from-header-variations.txt").read_text()
    values = [line for line in lines.splitlines() if line.strip()]
    assert len(values) >= 30
    for value in values:
        parsed = p(f"From: {value}")
        if "...." in value:  # pipermail truncated the domain: nothing to recover
            assert parsed.from_address is None, value
        else:
            assert parsed.from_address is not None, value
            assert " " not in parsed.from_address and parsed.from_address.count("@") == 1


# --- Date ----------------------------------------------------------------------------------

DATES: list[tuple[str, datetime | None]] = [
    ("Tue, 01 Jan 2002 10:00:00 +0100", datetime(2002, 1, 1, 9, 0, tzinfo=UTC)),
    ("01 Jan 2002 10:00:00 GMT", datetime(2002, 1, 1, 10, 0, tzinfo=UTC)),
    ("Tue, 01 Jan 2002 10:00:00 -0000", datetime(2002, 1, 1, 10, 0, tzinfo=UTC)),
    ("Mon, 31 Dec 2001 23:30:00 -0800 (PST)", datetime(2002, 1, 1, 7, 30, tzinfo=UTC)),
    ("Tue, 1 Jan 2002 27:39:33 +0000", None),
    ("Tue, 31 Feb 2002 10:00:00 +0000", None),
    ("yesterday", None),
    ("", None),
    ("Tue, 01 Jan 99999 10:00:00 +0000", None),
]


@pytest.mark.parametrize(("value", "expected"), DATES)
def test_date(value: str, expected: datetime | None) -> None:
    parsed = p(f"Date: {value}")
    assert parsed.date == expected
    if expected is None:
        assert "unparseable Date" in parsed.defects
    else:
        assert parsed.date is not None and parsed.date.utcoffset() is not None


def test_date_absent() -> None:
    parsed = p("Subject: x")
    assert parsed.date is None
    assert "no Date" in parsed.defects


# --- headers, size, hostile input ----------------------------------------------------------


def test_headers_are_decoded_unfolded_and_looked_up_case_insensitively() -> None:
    raw = mail(
        "Received: from a",
        "X-Tag: =?utf-8?q?caf=C3=A9?=",
        "received: from b\n\tby c",
        "List-Id: <dev.lists.example.org>",
    )
    parsed = parse(raw, domain=DOMAIN)
    assert parsed.get_all("RECEIVED") == ["from a", "from b\tby c"]
    assert parsed.header("x-tag") == "café"
    assert parsed.header("list-id") == "<dev.lists.example.org>"
    assert parsed.header("X-Missing") is None
    assert parsed.get_all("x-missing") == []
    assert parsed.size == len(raw)


def test_only_the_header_block_is_read() -> None:
    raw = mail("Subject: top", body="Subject: not a header\nMessage-ID: <body@example.com>\n")
    parsed = parse(raw, domain=DOMAIN)
    assert parsed.subject == "top"
    assert parsed.message_id_generated
    assert parsed.get_all("subject") == ["top"]


def test_crlf_and_missing_separator() -> None:
    parsed = parse(mail("Subject: crlf", "Message-ID: <c@example.com>", eol="\r\n"), domain=DOMAIN)
    assert (parsed.subject, parsed.message_id) == ("crlf", "c@example.com")
    broken = parse(b"Subject: x\nthis line has no colon\nFrom: a@example.com\n", domain=DOMAIN)
    assert broken.subject == "x"
    assert broken.from_address is None
    assert "a header line without a colon ends the header block" in broken.defects


HOSTILE = [
    b"",
    b"\n",
    b"\r\n\r\n",
    b"no headers at all",
    b"\x00\xff\xfe\x80",
    b" indented first line\nSubject: x\n\n",
    b"From nobody Mon Jan  1 00:00:00 2001\nSubject: mbox line\n\n",
    b":\n:\n\n",
    b"Subject: " + b"=?utf-8?q?a?= " * 20000 + b"\n\n",
    b"X: " + b"a" * 200_000 + b"\n\n",
    b"In-Reply-To: " + b"((((" * 1000 + b"<a@b>\n\n",
    b"References: " + b"<" * 5000 + b"\n\n",
    b"Date: Tue, 01 Jan 0 10:00:00 +9999\n\n",
    b"From: \"\\\n\n",
    b"From: " + b"<" * 1000 + b"\n\n",
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_never_raises(raw: bytes) -> None:
    parsed = parse(raw, domain=DOMAIN)
    assert parsed.message_id
    assert parsed.size == len(raw)
    assert isinstance(first_text(raw), str)


def test_random_header_soup_never_raises() -> None:
    rng = random.Random(2047)
    atoms = [b"From:", b"Message-ID:", b"In-Reply-To:", b"References:", b"Subject:", b"Date:",
             b"<", b">", b"(", b")", b'"', b"\\", b"@", b"=?", b"?q?", b"?b?", b"?=", b" ",
             b"\n", b"\r\n", b"\n ", b"\t", b"\xc3", b"\xa9", b"\xff", b"x", b"utf-8", b",", b";"]
    for _ in range(500):
        raw = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 60)))
        parsed = parse(raw, domain=DOMAIN)
        assert parsed.message_id and parsed.message_id not in parsed.references
        assert len(parsed.message_id) <= MAX_ID_LENGTH
        first_text(raw)


# --- set_message_id -------------------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_set_message_id_adds_one_line_and_keeps_every_other_byte(eol: str) -> None:
    raw = mail("From: joe@example.com", "Subject: x", eol=eol)
    stamped = set_message_id(raw, "new@lists.example.org")
    assert stamped == f"Message-ID: <new@lists.example.org>{eol}".encode() + raw
    parsed = parse(stamped, domain=DOMAIN)
    assert parsed.message_id == "new@lists.example.org"
    assert not parsed.message_id_generated


def test_set_message_id_round_trip_with_parse() -> None:
    raw = mail("Subject: x")
    parsed = parse(raw, domain=DOMAIN)
    stamped = set_message_id(raw, parsed.message_id)
    assert parse(stamped, domain=DOMAIN).message_id == parsed.message_id


def test_set_message_id_goes_below_an_mbox_from_line() -> None:
    raw = b"From joe@example.com Mon Jan  1 00:00:00 2001\nSubject: x\n\nbody\n"
    stamped = set_message_id(raw, "<n@example.org>")
    assert stamped == (b"From joe@example.com Mon Jan  1 00:00:00 2001\n"
                       b"Message-ID: <n@example.org>\nSubject: x\n\nbody\n")


def test_set_message_id_beats_an_unusable_one() -> None:
    raw = mail("Message-ID: <>", "Subject: x")
    assert parse(set_message_id(raw, "n@example.org"), domain=DOMAIN).message_id == "n@example.org"


def test_set_message_id_is_idempotent_and_refuses_a_second_id() -> None:
    raw = mail("Message-ID: <have@example.com>")
    assert set_message_id(raw, "have@example.com") is raw
    with pytest.raises(ValueError):
        set_message_id(raw, "other@example.com")


# --- add_date --------------------------------------------------------------------------------

WHEN = datetime(2026, 11, 25, 10, 0, 7, 123456, tzinfo=UTC)


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_add_date_adds_the_time_of_receipt_and_keeps_every_other_byte(eol: str) -> None:
    raw = mail("From: joe@example.com", "Subject: x", eol=eol)
    stamped = add_date(raw, WHEN)
    assert stamped == f"Date: Wed, 25 Nov 2026 10:00:07 +0000{eol}".encode() + raw
    assert parse(stamped, domain=DOMAIN).date == WHEN.replace(microsecond=0)
    assert "no Date" not in parse(stamped, domain=DOMAIN).defects


def test_add_date_goes_below_an_mbox_from_line_and_keeps_a_date_there_is() -> None:
    raw = b"From joe@example.com Mon Jan  1 00:00:00 2001\nSubject: x\n\nbody\n"
    assert add_date(raw, WHEN) == (b"From joe@example.com Mon Jan  1 00:00:00 2001\n"
                                   b"Date: Wed, 25 Nov 2026 10:00:07 +0000\nSubject: x\n\nbody\n")
    dated = mail("Date: 1 Apr 2025 09:01:00 +0100", "Subject: x")
    assert add_date(dated, WHEN) is dated
    # An unreadable Date is the sender's, kept as it is: only a missing one is added.
    odd = mail("Date: sometime last week", "Subject: x")
    assert add_date(odd, WHEN) is odd
    with pytest.raises(ValueError):
        add_date(raw, WHEN.replace(tzinfo=None))


@pytest.mark.parametrize(
    "bad", ["", "<>", "a b@example.com", "a@example.com\r\nBcc: x@y", "a<b@example.com", "ü@x",
            "x" * 300 + "@example.com"],
)
def test_set_message_id_refuses_ids_that_would_damage_the_header(bad: str) -> None:
    with pytest.raises(ValueError):
        set_message_id(b"Subject: x\n\n", bad)


# --- first_text -----------------------------------------------------------------------------

ALTERNATIVE = b"""\
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 plain
--b
Content-Type: text/html; charset=utf-8

<p>Caf\xc3\xa9 html</p>
--b--
"""

HTML_ONLY = b"""\
Content-Type: text/html; charset=iso-8859-1

<html><head><title>T</title><style>p {color: red}</style></head>
<body><p>Caf\xe9 &amp; cr&egrave;me</p><script>alert(1)</script>
<div>Second&nbsp;line</div><ul><li>one</li><li>two</li></ul>line<br>break</body></html>
"""

ATTACHED_TEXT = b"""\
Content-Type: multipart/mixed; boundary="m"

--m
Content-Type: text/html

<b>the body</b>
--m
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"

an attachment
--m--
"""

IMAGE_ONLY = b"""\
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
"""

FIRST_TEXTS: list[tuple[bytes, str]] = [
    (b"Subject: x\n\nplain body\n", "plain body\n"),
    (b"Content-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n", "café\n"),
    (b"Content-Type: text/plain\n\ncaf\xc3\xa9\n", "café\n"),  # undeclared 8-bit: UTF-8 first
    (b"Content-Type: text/plain; charset=x-bogus\n\ncaf\xc3\xa9\n", "café\n"),
    (b"Content-Type: text/plain; charset=base64\n\nabc\n", "abc\n"),
    (b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
     b"Y2Fmw6k=\n", "café"),
    (b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
     b"!!!not base64\n", "!!!not base64"),  # the stdlib hands back what it cannot decode
    (ALTERNATIVE, "Café plain"),  # the line end before a boundary belongs to the boundary
    (HTML_ONLY, "Café & crème\n\nSecond line\n\none\ntwo\n\nline\nbreak"),
    (ATTACHED_TEXT, "the body"),
    (IMAGE_ONLY, ""),
    (b"", ""),
    (b"Content-Type: multipart/mixed; boundary=\"z\"\n\n--z\n", ""),
]


@pytest.mark.parametrize(("raw", "expected"), FIRST_TEXTS, ids=range(len(FIRST_TEXTS)))
def test_first_text(raw: bytes, expected: str) -> None:
    assert first_text(raw) == expected


def test_first_text_accepts_a_parsed_message() -> None:
    assert first_text(message_from_bytes(ALTERNATIVE, policy=compat32)) == "Café plain"


def test_html_to_text_keeps_paragraphs_apart() -> None:
    assert html_to_text("<p>a</p><p>b</p>\n\n\n\n<p>c</p>") == "a\n\nb\n\nc"
    assert html_to_text("<p>unclosed <b>tags &lt;3") == "unclosed tags <3"
    assert html_to_text("<div>source\n  newlines are\nspaces</div>") == "source newlines are spaces"
    assert html_to_text("<pre>keep\n  this</pre>after") == "keep\n  this\n\nafter"
    assert html_to_text("a<br><br>b<br>c") == "a\n\nb\nc"
    assert html_to_text("") == ""


# --- the corpus: real mail nobody here wrote -------------------------------------------------

# folder -> (globs of single-message files, globs of mboxes, least number of messages)
CORPUS: dict[str, tuple[list[str], list[str], int]] = {
    "cpython-test_email": (["msg_*.txt", "upstream-main/msg_*.txt"],
                           ["upstream-main/*.mbox"], 52),
    "mime4j": (["**/*.msg", "mbox/**/mbox.rlug-*"], ["mbox/**/mbox.rlug"], 90),
    "flanker": (["**/*.eml"], [], 48),
    "ruby-mail": (["**/*.eml"], [], 103),
    "mimekit": (["messages/*"], ["mbox/*.mbox.txt"], 71),
    "mail-parser": (["mail_*"], [], 18),
    "bigbang-list-archives": ([], ["2001-November.txt", "3GPP_mbox/*.mbox"], 273),
    "talon": (["**/*.eml"], [], 13),
}


def messages(root: Path, singles: list[str], mboxes: list[str]) -> list[tuple[str, bytes]]:
    found = [(str(f), f.read_bytes()) for g in singles for f in sorted(root.glob(g))]
    for g in mboxes:
        for path in sorted(root.glob(g)):
            box = mailbox.mbox(path, create=False)
            try:
                found.extend((f"{path}#{key}", box.get_bytes(key)) for key in box.iterkeys())
            finally:
                box.close()
    return found


@pytest.mark.parametrize("folder", list(CORPUS))
def test_corpus_parses(corpus: Path, folder: str) -> None:
    singles, mboxes, least = CORPUS[folder]
    found = messages(corpus / folder, singles, mboxes)
    assert len(found) >= least, f"{folder}: only {len(found)} messages found"
    for name, raw in found:
        parsed = parse(raw, domain=DOMAIN)
        assert parsed.message_id, name
        assert len(parsed.message_id) <= MAX_ID_LENGTH, name
        assert parsed.message_id not in parsed.references, name
        assert parsed.size == len(raw)
        assert isinstance(first_text(raw), str)


def test_corpus_bare_ids_still_thread(corpus: Path) -> None:
    # LISTSERV writes Message-ID and In-Reply-To without angle brackets; every reply in this
    # export answers a message in the same file.
    found = messages(corpus / "bigbang-list-archives", [], ["3GPP_mbox/*RAN_WG4*.mbox"])
    parsed = [parse(raw, domain=DOMAIN) for _, raw in found]
    ids = {m.message_id for m in parsed}
    replies = [m.in_reply_to for m in parsed if m.in_reply_to]
    assert len(replies) >= 25
    assert all(r in ids for r in replies)


def test_corpus_duplicated_archive_keeps_its_ids(corpus: Path) -> None:
    # The pipermail file holds the same 82 messages twice: ids must be read, not generated.
    found = messages(corpus / "bigbang-list-archives", [], ["2001-November.txt"])
    parsed = [parse(raw, domain=DOMAIN) for _, raw in found]
    assert len(parsed) == 164
    assert not any(m.message_id_generated for m in parsed)
    assert len({m.message_id for m in parsed}) == 82


def test_corpus_known_quirks(corpus: Path) -> None:
    def load(rel: str) -> ParsedMessage:
        return parse((corpus / rel).read_bytes(), domain=DOMAIN)

    empty = load("ruby-mail/error_emails/empty_in_reply_to.eml")
    assert empty.in_reply_to is None and "empty In-Reply-To" in empty.defects
    refs = load("ruby-mail/error_emails/multiple_references_with_one_invalid.eml")
    assert refs.references[:2] == ("foo@bar.net", "baz@bar.net")
    long_irt = load("cpython-test_email/upstream-main/msg_48.txt")
    assert long_irt.in_reply_to == (
        "somelonglonglonglonglongunwrappablemessageidtoreplyto@mail.foo.bar"
    )
    bad_date = load("cpython-test_email/upstream-main/msg_47.txt")
    assert bad_date.date is None and "unparseable Date" in bad_date.defects
    utf8 = load("ruby-mail/rfc6532/utf8_headers.eml")
    assert utf8.subject == "Säying Hello"
    assert utf8.from_address == "jdöe@mächine.example"
    huge = load("mimekit/messages/stack-overflow.txt")
    assert huge.subject == "Message Subject"


def test_corpus_html_replies_reduce_to_text(corpus: Path) -> None:
    pages = sorted((corpus / "talon" / "html_replies").glob("*.html"))
    assert len(pages) >= 9
    for page in pages:
        text = html_to_text(page.read_text(encoding="utf-8", errors="replace"))
        assert text and "<div" not in text and "<p" not in text, page.name


def test_first_text_reads_8bit_utf8_labelled_ascii_as_utf8() -> None:
    # Mislabelled posts are common (an MTA or script adds "us-ascii" to any text); the bytes win.
    raw = (b"Subject: x\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\n"
           + "Envoyé par Bell Mobilité\n".encode())
    assert first_text(raw) == "Envoyé par Bell Mobilité\n"


def test_html_to_text_when_head_is_never_closed() -> None:
    # Some clients open <head> and go straight to <body>: the body is still the text.
    assert html_to_text("<html><head><title>Hi</title><body><p>Room booked.</p></body>") == "Room booked."
    assert html_to_text("<html><head>\n<meta charset=utf-8><p>Room booked.") == "Room booked."
    assert html_to_text("<head><style>p {}</style></head><p>Room booked.</p>") == "Room booked."
    assert html_to_text("<html><head>Room booked.") == "Room booked."


# --- the header block's shortcut ---------------------------------------------------------------

def odd_blocks(n: int) -> list[bytes]:
    """``n`` header blocks of well-formed fields with, now and then, a line that is not one
    (no colon, an indented first line, a lone CR, a space in a name, 8-bit bytes, an mbox line)."""
    rnd = random.Random(7)
    fields = [b"From: Ann <ann@example.org>", b"Subject: =?utf-8?q?caf=C3=A9?=", b"X-Empty:",
              b"References: <a@x>\r\n <b@x>", b"To: a@x,\n\tb@x", b"Message-ID:  <m@x> ",
              "Subject: caf\u00e9".encode(), b"Date: Wed, 25 Nov 2026 10:00:00 +0000"]
    odd = [b"no colon here", b" indented", b"Bad\rLine: x", b"X Bad: 1", b"From nobody 2001",
           b"\xe9t\xe9: 1", b":empty name", b"Tab\t: x", b"X-Trailing: x\r"]
    blocks = []
    for _ in range(n):
        eol = rnd.choice([b"\n", b"\r\n"])
        lines = [rnd.choice(odd if rnd.random() < 0.1 else fields) for _ in range(rnd.randint(0, 6))]
        blocks.append(eol.join(lines) + rnd.choice([eol + eol + b"body", eol, b""]))
    return blocks


def test_the_header_shortcut_reads_what_the_email_parser_reads(corpus: Path) -> None:
    found = [raw for folder, (singles, mboxes, _) in CORPUS.items()
             for _, raw in messages(corpus / folder, singles, mboxes)]
    shortcut = 0
    for raw in found + odd_blocks(500):
        block = _header_block(raw)
        assert _raw_headers(raw) == _parsed_headers(block), raw[:300]
        shortcut += bool(_WELL_FORMED.fullmatch(block))
    assert shortcut > len(found) // 2, "most real mail takes the shortcut"


# --- the plain-text body's shortcut ------------------------------------------------------------

def plain_variants() -> list[bytes]:
    """Single-part messages around the shortcut's edges: charsets quoted, upper-cased, spaced,
    repeated or mislabelled; folded, repeated or unusual Content-Type and transfer-encoding
    fields; a disposition; CRLF and LF; no blank line; odd header lines."""
    body = "Caf\u00e9 au lait,\r\nsee you.\r\n".encode()
    types = [None, "text/plain", "TEXT/Plain", "text/plain; charset=utf-8",
             'text/plain; charset="UTF-8"', "text/plain;charset=iso-8859-1; format=flowed",
             'text/plain; format=flowed; charset="us-ascii"; delsp=yes',
             "text/plain; charset = utf-8 ;", 'text/plain; charset=" utf-8 "',
             "text/plain; charset=utf-8; charset=latin1", "text/plain;\r\n charset=utf-8",
             "text/plain; charset*=utf-8''x", "text/plain; charset=utf-8 (comment)",
             "text/html; charset=utf-8", "text", "text/plain/x", "multipart/mixed; boundary=b",
             "text/plain; charset=bogus-charset", 'text/plain; charset=""', "text/plain; name"]
    ctes = [None, "7bit", "8BIT", "binary", " 7bit", "7bit ", "quoted-printable", "base64"]
    extras = [[], ["Content-Disposition: inline"], ["Content-Disposition: attachment"],
              ["Content-Type: text/html"], ["Content-Transfer-Encoding: base64"],
              ["MIME-Version: 1.0"]]
    found = []
    rnd = random.Random(12)
    for ctype in types:
        for cte in ctes:
            headers = ["From: Ann <ann@example.org>", "Subject: Hi"]
            headers += [f"Content-Type: {ctype}"] if ctype else []
            headers += [f"Content-Transfer-Encoding: {cte}"] if cte else []
            for extra in ([], rnd.choice(extras)):
                for eol in ("\n", "\r\n"):
                    head = eol.join(headers + extra).replace("\r\n ", eol + " ").encode()
                    found += [head + eol.encode() * 2 + body, head + eol.encode(),
                              head + eol.encode() * 2, head + eol.encode() * 3 + body]
    return found


def test_the_plain_text_shortcut_reads_what_the_email_parser_reads(corpus: Path) -> None:
    """``first_text`` of a one-part text/plain message is read without the email parser (it
    ran for every accepted post, issue 12): the same text as the parser's way, on the corpus,
    the header blocks above and the variants of a plain part; anything else is the parser's."""
    from listserv.bodytext import _parsed_first_text, _plain_text

    found = [raw for folder, (singles, mboxes, _) in CORPUS.items()
             for _, raw in messages(corpus / folder, singles, mboxes)]
    shortcut = 0
    for raw in found + odd_blocks(500) + plain_variants():
        plain = _plain_text(raw)
        if plain is not None:
            shortcut += 1
            assert plain == _parsed_first_text(raw), raw[:400]
        assert first_text(raw) == _parsed_first_text(raw), raw[:400]
    assert shortcut > 300, shortcut
    assert _plain_text(mail("From: a@x", "Subject: s", body="Hi.\n")) == "Hi.\n"


def _plain_from_values(seed: int, n: int) -> list[str]:
    rnd = random.Random(seed)
    word_chars = "abcXYZ019"
    local_chars, label_chars = "aZ09_+-", "aZ09-"

    def run(chars: str, k: int) -> str:
        return "".join(rnd.choice(chars) for _ in range(rnd.randint(1, k)))

    out = []
    for _ in range(n):
        name = " ".join(run(word_chars, 6) for _ in range(rnd.randint(0, 3)))
        addr = (".".join(run(local_chars, 5) for _ in range(rnd.randint(1, 3))) + "@"
                + ".".join(run(label_chars, 5) for _ in range(rnd.randint(1, 3))))
        form = rnd.choice([f"{name} <{addr}>", f"<{addr}>", addr, f"{name}  <{addr}>",
                           f"{name}<{addr}>", f'"{name}" <{addr}>', f"{addr} ({name})"])
        out.append(form.strip())
    # Near misses that must go to the stdlib parser.
    out += ["Ann. Lee <a@b.c>", "Ann <a@b.c>, Bob <b@c.d>", "a @b.c", "Ann <a..b@c.d>",
            "Ann <a@b.c> ", "Ann Lee <a@[1.2.3.4]>", "<a@b.c", "Ann <a.@b.c>", "Anné <a@b.c>"]
    return out


def test_plain_from_values_read_as_getaddresses_reads_them() -> None:
    from email.utils import getaddresses

    from listserv.message import _PLAIN_FROM, _mailboxes

    values = _plain_from_values(12, 3000)
    assert sum(1 for v in values if _PLAIN_FROM.fullmatch(v)) > 1000  # the shortcut is taken
    for value in values:
        assert _mailboxes(value) == getaddresses([value]), value
