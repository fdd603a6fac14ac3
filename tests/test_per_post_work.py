"""Work a post need not do (issue 12): bans read once per transaction and list, but never stale
after a change; a sender notice built only when it may go; the attachment line check."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy import event
from sqlmodel import select

from listserv import accept, bans, sender_notices, subscriptions
from listserv.models import MailingList, utcnow
from listserv.notices import WIRE, _set_plain, attachment_encoding
from listserv.store import Store
from tests.harness import make_list


def statements_about_bans(store: Store) -> list[str]:
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: seen.append(sql) if "FROM ban" in sql else None)
    return seen


def test_bans_are_read_once_per_transaction_and_again_after_a_change(store: Store) -> None:
    make_list(store, "demo")
    now = utcnow()
    queries = statements_about_bans(store)
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        assert not subscriptions.is_banned(s, ml.id, "eve@spam.example", now)
        assert not subscriptions.is_banned(s, ml.id, "eve@spam.example", now)
        assert len(queries) == 1, "read once"
        bans.add(s, ml, "*@spam.example", actor="test")
        assert subscriptions.is_banned(s, ml.id, "eve@spam.example", now), "seen at once"
    with store.session() as s:  # another transaction: read again
        ml = s.exec(select(MailingList)).one()
        [ban] = bans.listing(s, ml, now)
        bans.remove(s, ban.id, actor="test")
        assert not subscriptions.is_banned(s, ml.id, "eve@spam.example", now)
    with store.session() as s:
        assert not subscriptions.is_banned(s, ml.id, "eve@spam.example", now)
    assert len([q for q in queries if "IS NULL OR" in q and "JOIN" not in q]) == 4


def test_a_ban_made_elsewhere_counts_from_the_next_transaction(store: Store) -> None:
    make_list(store, "demo")
    now = utcnow()
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        assert not subscriptions.is_banned(s, ml.id, "eve@spam.example", now)
    with store.session() as other:  # the web pages, say
        bans.add(other, None, "eve@spam.example", actor="web")
    with store.session() as s:
        assert subscriptions.is_banned(s, ml.id, "eve@spam.example", now)


def test_a_notice_that_may_not_go_is_never_built(store: Store) -> None:
    built: list[str] = []

    def payload() -> bytes:
        built.append("built")
        return b"Subject: held\r\n\r\nHeld.\r\n"

    def tell() -> bool:
        with store.session() as s:
            return sender_notices.notify(s, list_id=None, address="dan@elsewhere.example",
                                         kind="held", sender="demo-bounces@lists.example.org",
                                         payload=payload, raw=b"Subject: x\r\n\r\nx\r\n",
                                         envelope_from="dan@elsewhere.example", now=utcnow())

    assert tell() and built == ["built"]
    assert not tell(), "one a day"
    assert built == ["built"], "the second was not built"


@pytest.mark.parametrize("raw,expected", [
    (b"Subject: x\r\n\r\n" + b"a" * 998 + b"\r\n", "7bit"),
    (b"Subject: x\r\n\r\n" + b"a" * 999 + b"\r\n", None),
    (b"Subject: x\r\n\r\n" + b"a" * 999, None),  # the last line, without CRLF
    (b"Subject: x\r\n\r\n" + b"a" * 998, "7bit"),
    (b"Subject: x\r\n\r\n" + b"a" * 998 + b"\n" + b"b" * 998 + b"\r\n", "7bit"),
    (b"Subject: x\r\n\r\n" + b"a" * 600 + b"\r" + b"b" * 600 + b"\r\n", None),  # bare CR
    (b"Subject: x\r\n\r\n\xc3\xa9t\xc3\xa9\r\n", "8bit"),
    (b"Subject: x\r\n\r\nnul \0 here\r\n", None),
])
def test_attachment_encoding(raw: bytes, expected: str | None) -> None:
    assert attachment_encoding(raw) == expected


@pytest.mark.parametrize("name,value", [
    ("Date", "Sun, 06 Dec 2026 06:41:00 +0000"),
    ("Message-ID", "<176503.28.1@lists.example.org>"),
    ("Auto-Submitted", "auto-replied"),
    ("List-Id", "<demo.lists.example.org>"),
    ("X-Loop", "demo@lists.example.org"),
    ("List-Id", "<" + "a-very-long-list-name." * 4 + "lists.example.org>"),  # folded: parsed
    ("Subject", "Café"),  # not ASCII: encoded by the email package
])
def test_a_header_set_as_is_is_written_as_the_email_package_would(name: str,
                                                                  value: str) -> None:
    parsed, plain = EmailMessage(policy=WIRE), EmailMessage(policy=WIRE)
    parsed[name] = value
    _set_plain(plain, name, value)
    assert plain.as_bytes() == parsed.as_bytes()


def test_whether_a_sender_is_a_member_is_asked_once_a_minute(store: Store) -> None:
    make_list(store, "demo", members=("ann@example.org",))
    queries: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: queries.append(sql) if "subscription" in sql else None)
    hint = accept.MemberHint(store)
    assert hint("ann@example.org", ("demo",))
    assert not hint("spam@elsewhere.example", ("demo",))
    for _ in range(3):
        assert hint("ann@example.org", ("demo",))
        assert not hint("spam@elsewhere.example", ("demo",))
    assert len(queries) == 2
    assert not accept.MemberHint(store)("ann@example.org", ("other",))
