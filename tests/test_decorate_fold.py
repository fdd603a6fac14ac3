"""decorate.WIRE writes a header that needs no folding without building an
``email.header.Header`` for it, and every header exactly as compat32 (CRLF, 78 columns) does."""

from __future__ import annotations

import email.header
import email.policy
import random

import pytest

from listserv import decorate
from listserv.decorate import WIRE, Author, ListInfo, prepare

COMPAT32 = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
NAMES = ("Subject", "From", "To", "List-Id", "X-Commonroom-Role", "Message-ID",
         "List-Unsubscribe-Post", "A")
INFO = ListInfo("demo", "lists.example.org", "Demo list", "https://lists.example.org")


def values(alphabet: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
            for _ in range(count)]


PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F)) + "\t"
SPACES = " \t=?;,:()<>\"\\ab"
ODD = " \tab=?\x0b\x0c\x1c\x1d\x1e\x85\x00\x7féü€"  # line breaks to splitlines, non-ASCII


@pytest.mark.parametrize("alphabet", [PRINTABLE, SPACES, ODD], ids=["printable", "spaces", "odd"])
def test_every_header_is_folded_as_compat32_folds_it(alphabet: str) -> None:
    for n, value in enumerate(values(alphabet, 4000, seed=len(alphabet))):
        name = NAMES[n % len(NAMES)]
        assert WIRE.fold_binary(name, value) == COMPAT32.fold_binary(name, value), (name, value)


def test_long_and_folded_values_take_compat32_s_way() -> None:
    long = "word " * 30
    assert WIRE.fold_binary("Subject", long) == COMPAT32.fold_binary("Subject", long)
    assert b"\r\n " in WIRE.fold_binary("Subject", long)
    folded = "first part\r\n second part"
    assert WIRE.fold_binary("Subject", folded) == COMPAT32.fold_binary("Subject", folded)


RAW = [
    b"From: Ann <ann@example.org>\r\nTo: demo@lists.example.org\r\nSubject: Hello there\r\n"
    b"Message-ID: <1@example.org>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n",
    b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.org>\r\nSubject: =?utf-8?q?Caf=C3=A9?= and "
    b"a subject long enough that it has to be folded over more than one line of the header\r\n"
    b"References: <a@example.org>\r\n <b@example.org>\r\nX-Odd:\tvalue\twith tabs \r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Caf\xc3\xa9.\r\n",
]


@pytest.mark.parametrize("raw", RAW, ids=["plain", "encoded"])
def test_a_prepared_post_is_byte_for_byte_compat32_s(raw: bytes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    author = Author("ann@example.org", "Ann Example", "Acme", is_vendor=True)
    ours = prepare(raw, INFO, author, munge_from=False).body
    monkeypatch.setattr(decorate, "WIRE", COMPAT32)
    assert prepare(raw, INFO, author, munge_from=False).body == ours


def test_plain_headers_build_no_header_object(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    class Counting(email.header.Header):
        def __init__(self, *args: object, **kwargs: object) -> None:
            if kwargs.get("header_name"):  # compat32 folding names it; decoding does not
                built.append(str(kwargs["header_name"]))
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(email.header, "Header", Counting)
    prepare(RAW[0], INFO, Author("ann@example.org", "Ann"), munge_from=False)
    assert built == []
