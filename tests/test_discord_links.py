"""Linking a Discord account (listserv.discord_links): codes, hashing, expiry, attempt limits,
and the same answer whether or not an address is a member (issue 8)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from sqlmodel import select

from listserv import discord_links as dl
from listserv.config import Config
from listserv.models import Address, DiscordLink, Outbox, utcnow
from listserv.store import Store
from tests.harness import make_list, parse

USER = "111111111111111111"
OTHER = "222222222222222222"


def _cfg() -> Config:
    return replace(Config(), bridges={"demo": "333333333333333333"})


def _mailed_code(store: Store, to: str) -> str:
    with store.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.recipient == to)).all()
    assert rows, f"no mail to {to}"
    payload = rows[-1].payload
    assert payload is not None
    match = re.search(r"code:(\d+)", parse(payload).get_payload())  # type: ignore[arg-type]
    assert match
    return match.group(1)


def _request(store: Store, email: str, user: str = USER, cfg: Config | None = None) -> dl.Outcome:
    with store.session() as s:
        return dl.request_link(s, cfg or _cfg(), user, email)


def _verify(store: Store, code: str, user: str = USER) -> dl.Outcome:
    with store.session() as s:
        return dl.verify(s, user, code)


def test_member_gets_a_code_and_verifying_links(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    answer = _request(store, "jane@Example.COM")  # the domain's case does not matter
    code = _mailed_code(store, "jane@example.com")
    assert _verify(store, code).ok
    with store.session() as s:
        person = s.exec(select(Address).where(Address.email == "jane@example.com")).one().person_id
        assert dl.linked_person(s, USER) == person
    assert answer.ok


def test_answer_is_the_same_for_a_stranger_and_no_mail_goes(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    make_list(store, "unbridged", members=("bob@example.com",))
    member = _request(store, "jane@example.com", OTHER)
    stranger = _request(store, "nobody@example.com")
    unbridged = _request(store, "bob@example.com")
    assert member.text.replace("jane", "X") == stranger.text.replace("nobody", "X")
    assert stranger.text.replace("nobody", "X") == unbridged.text.replace("bob", "X")
    with store.session() as s:
        assert [r.recipient for r in s.exec(select(Outbox)).all()] == ["jane@example.com"]
    # Whatever the stranger's account types, nothing links.
    assert not _verify(store, "00000000").ok


def test_code_is_bound_to_the_account_that_asked(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    _request(store, "jane@example.com", USER)
    code = _mailed_code(store, "jane@example.com")
    assert not _verify(store, code, OTHER).ok  # OTHER has no code waiting at all
    assert _verify(store, code, USER).ok
    assert not _verify(store, code, USER).ok  # used once


def test_wrong_codes_are_limited(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    _request(store, "jane@example.com")
    code = _mailed_code(store, "jane@example.com")
    wrong = "1" + code[1:] if code[0] != "1" else "2" + code[1:]
    for _ in range(dl.MAX_ATTEMPTS):
        assert not _verify(store, wrong).ok
    outcome = _verify(store, code)
    assert not outcome.ok and "too many" in outcome.text


def test_expired_code_does_not_link(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    with store.session() as s:
        dl.request_link(s, _cfg(), USER, "jane@example.com",
                        now=utcnow() - dl.CODE_TTL - timedelta(seconds=1))
    code = _mailed_code(store, "jane@example.com")
    assert not _verify(store, code).ok


def test_requests_per_day_are_limited_for_strangers_too(store: Store) -> None:
    for _ in range(dl.MAX_REQUESTS_PER_DAY):
        assert _request(store, "nobody@example.com").ok
    assert not _request(store, "nobody@example.com").ok


def test_relinking_replaces_and_unlink_removes(store: Store) -> None:
    make_list(store, members=("jane@example.com", "joe@example.com"))
    _request(store, "jane@example.com")
    assert _verify(store, _mailed_code(store, "jane@example.com")).ok
    _request(store, "joe@example.com")
    assert _verify(store, _mailed_code(store, "joe@example.com")).ok
    with store.session() as s:
        assert len(s.exec(select(DiscordLink)).all()) == 1
    with store.session() as s:
        assert dl.unlink(s, USER).ok
    with store.session() as s:
        assert dl.linked_person(s, USER) is None
        assert not dl.unlink(s, USER).ok


def test_not_an_address_is_refused(store: Store) -> None:
    assert not _request(store, "not an address").ok
