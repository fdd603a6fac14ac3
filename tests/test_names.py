"""Names and organisations as they enter: one line of printable text (issue 7.20)."""

from __future__ import annotations

import pytest

from listserv import names
from listserv.names import MAX_LENGTH, clean


@pytest.mark.parametrize("given,expected", [
    ("Jane Doe", "Jane Doe"),
    ("  Jane \t Doe  ", "Jane Doe"),
    ("Jane\nDoe", "Jane Doe"),
    ("Jane\r\nDoe", "Jane Doe"),
    ("Acme\x00 Ltd\x07", "Acme Ltd"),
    ("Acme\x1b[31m Ltd", "Acme [31m Ltd"),  # the escape goes; the rest is only text
    ("Jane\u2028Doe\u2029", "Jane Doe"),  # Unicode line and paragraph separators
    ("Jane\x85Doe", "Jane Doe"),  # NEL
    ("\u202eodnev\u202c Jane", "odnev Jane"),  # a bidi override could hide "(…, vendor)"
    ("Zero\u200bwidth\ufeff", "Zerowidth"),
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",) * 2,  # ZWNJ kept (Persian)
    ("\U0001f469\u200d\U0001f4bb Dev", "\U0001f469\u200d\U0001f4bb Dev"),  # ZWJ emoji kept
    ("Jose\u0301", "Jos\u00e9"),  # NFC
    ("bad \udcff byte", "bad byte"),  # a lone surrogate (surrogateescape) cannot be encoded
    ("\n\t\x00", ""),
    ("Zoë Ørsted-Ñúñez", "Zoë Ørsted-Ñúñez"),
])
def test_clean(given: str, expected: str) -> None:
    assert clean(given) == expected


def test_clean_is_idempotent_and_bounded() -> None:
    long = "Acme " * 500
    once = clean(long)
    assert len(once) <= MAX_LENGTH and not once.endswith(" ") and clean(once) == once


@pytest.mark.parametrize(("name", "expected"), [
    ("Jane Doe", "Jane Doe <j@x.org>"),
    ("Doe, Jane", '"Doe, Jane" <j@x.org>'),
    ("", "j@x.org"),
    ("Zoë", "=?utf-8?q?Zo=C3=AB?= <j@x.org>"),
    # Read as text, not as an encoded word a decoder would turn into a line break:
    ("=?utf-8?q?Eve=0D=0ABcc=3A_v=40x.org?=",
     "=?utf-8?b?PT91dGYtOD9xP0V2ZT0wRD0wQUJjYz0zQV92PTQweC5vcmc/PQ==?= <j@x.org>"),
    ("Eve\r\nBcc: v@x.org", '"Eve Bcc: v@x.org" <j@x.org>'),
])
def test_mailbox_never_lets_a_name_become_a_header(name: str, expected: str) -> None:
    assert names.mailbox(name, "j@x.org") == expected
