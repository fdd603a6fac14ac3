"""Competitions (listserv.competitions, listserv.competition_entries): the draw rule on known
values, entries (one per person, members only, the sponsor's staff refused, none after the
close), the draw once (twice called, two at a time), verify agreeing and a tampered list
failing, and the reserve."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import competitions
from listserv import config as config_mod
from listserv.competition_entries import Entry
from listserv.config import Config
from listserv.message import parse
from listserv.models import (
    Competition,
    CompetitionEntry,
    CompetitionState,
    MailingList,
    Message,
)
from listserv.posting import post
from listserv.store import Store
from listserv.subscriptions import add_member
from tests.harness import mail, make_list

MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk", "cat@parish.gov.uk", "dan@town.gov.uk")
SPONSOR = "sal@acme.example"
DOMAIN = "lists.example.org"


def test_pick_is_hmac_of_the_id_mod_n_then_the_same_rule_on_those_left() -> None:
    seed = bytes(range(32))
    h = int.from_bytes(hmac.new(seed, b"7", hashlib.sha256).digest(), "big")
    n = 5
    remaining = [0, 1, 2, 3, 4]
    first = remaining.pop(h % 5)
    second = remaining.pop(h % 4)
    assert competitions.pick(seed, 7, n, 3)[:2] == [first, second]
    assert len(set(competitions.pick(seed, 7, n, 9))) == 5  # never more than there are
    assert competitions.pick(seed, 7, 0, 3) == []
    assert competitions.commitment(seed) == hashlib.sha256(seed).hexdigest()


@pytest.fixture
def cfg(config_path: Path) -> Config:
    return config_mod.load(config_path, env={})


def _list(store: Store) -> None:
    make_list(store, "demo", members=MEMBERS, nonmember_action="accept", policy_scope="off")
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        add_member(s, ml, SPONSOR, organisation="Acme", vendor=True, verified=True)


def _start(store: Store, cfg: Config, closes: datetime, **kw: object) -> tuple[int, str]:
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        comp = competitions.start(s, cfg, ml, prize="a book token", closes_at=closes,
                                  now=datetime.now(UTC), exclude_org="Acme", **kw)  # type: ignore[arg-type]
        announced = s.get(Message, comp.message_pk)
        assert comp.id is not None and announced is not None
        return comp.id, announced.message_id


def _reply(store: Store, cfg: Config, sender: str, parent: str, n: int) -> Entry:
    raw = mail(sender, f"demo@{DOMAIN}", "Re: Competition", "Count me in!\n",
               headers={"In-Reply-To": f"<{parent}>"}, message_id=f"r{n}.{sender}")
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        result = post(s, cfg, ml, raw, parse(raw, domain=DOMAIN), envelope_from=sender)
        assert result.decision.action.value == "accept"
    with store.session() as s:
        return Entry.ENTERED if s.exec(select(CompetitionEntry).where(
            CompetitionEntry.address == sender)).first() else Entry.NONE


def test_entries_one_per_member_and_refusals(store: Store, cfg: Config) -> None:
    _list(store)
    cid, parent = _start(store, cfg, datetime.now(UTC) + timedelta(days=1))
    for n, who in enumerate([MEMBERS[0], MEMBERS[1], MEMBERS[0], "stranger@x.example",
                             SPONSOR, MEMBERS[0]]):
        _reply(store, cfg, who, parent, n)
    with store.session() as s:
        got = [e.address for e in competitions.entries(s, cid)]
        comp = s.get(Competition, cid)
        announced = s.get(Message, comp.message_pk) if comp else None
    assert got == [MEMBERS[0], MEMBERS[1]]
    assert announced is not None and comp is not None
    assert comp.commitment.encode() in announced.raw and comp.seed.encode() not in announced.raw
    # A post in another thread is no entry.
    raw = mail(MEMBERS[2], f"demo@{DOMAIN}", "Something else", message_id="other@x")
    with store.session() as s:
        post(s, cfg, s.exec(select(MailingList)).one(), raw, parse(raw, domain=DOMAIN),
             envelope_from=MEMBERS[2])
        assert len(competitions.entries(s, cid)) == 2


def test_draw_once_verify_and_a_tampered_list_fails(store: Store, cfg: Config) -> None:
    _list(store)
    closes = datetime.now(UTC) + timedelta(days=1)
    cid, parent = _start(store, cfg, closes, reserves=2)
    for n, who in enumerate(MEMBERS):
        _reply(store, cfg, who, parent, n)
    assert competitions.draw_due(store, cfg, closes - timedelta(minutes=1)) == []
    drawn = competitions.draw_due(store, cfg, closes + timedelta(minutes=1))
    assert [d.competition_id for d in drawn] == [cid]
    assert competitions.draw_due(store, cfg, closes + timedelta(minutes=2)) == []
    with store.session() as s:
        comp = s.get(Competition, cid)
        assert comp is not None and comp.state == CompetitionState.DRAWN.value
        picks = json.loads(comp.picks)
        expected = competitions.pick(bytes.fromhex(comp.seed), cid, 4, 3)
        assert picks == expected and drawn[0].winner == MEMBERS[expected[0]]
        assert drawn[0].reserves == tuple(MEMBERS[p] for p in expected[1:])
        result = s.exec(select(Message).where(Message.subject == "Re: Competition: win a book "
                                              "token")).all()
        assert len(result) == 1 and comp.seed.encode() in result[0].raw
        assert result[0].thread_id == comp.thread_id
        assert competitions.verify(s, comp).ok
        # Someone edits the published list (drops an entrant): verify fails.
        comp.entrants = json.dumps(json.loads(comp.entrants)[1:])
        s.add(comp)
        s.flush()
        bad = competitions.verify(s, comp)
        assert not bad.ok and any(not ok and "published list" in w for ok, w in bad.checks)
        s.rollback()
    with store.session() as s:  # someone deletes an entry after the draw: verify fails
        comp = s.get(Competition, cid)
        assert comp is not None
        s.delete(competitions.entries(s, cid)[0])
        s.flush()
        assert not competitions.verify(s, comp).ok
        s.rollback()
    with store.session() as s:  # the winner does not answer: the first reserve, then the next
        comp = s.get(Competition, cid)
        assert comp is not None
        assert competitions.draw_reserve(s, cfg, comp) == MEMBERS[expected[1]]
        assert competitions.draw_reserve(s, cfg, comp) == MEMBERS[expected[2]]
        assert competitions.draw_reserve(s, cfg, comp) is None


def test_two_schedulers_at_once_draw_once(store: Store, db_url: str, cfg: Config) -> None:
    _list(store)
    closes = datetime.now(UTC) + timedelta(days=1)
    _start(store, cfg, closes)
    stores = [Store(db_url), Store(db_url)]
    results: list[int] = []
    barrier = threading.Barrier(2)

    def run(st: Store) -> None:
        barrier.wait()
        results.append(len(competitions.draw_due(st, cfg, closes + timedelta(minutes=1))))

    threads = [threading.Thread(target=run, args=(st,)) for st in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for st in stores:
            st.dispose()
    assert sorted(results) == [0, 1]
    with store.session() as s:
        assert len(s.exec(select(Message).where(Message.reason == "competition")).all()) == 2


def test_a_closed_competition_takes_no_entries_and_no_entrants_wins_nothing(
        store: Store, cfg: Config) -> None:
    _list(store)
    closes = datetime.now(UTC) + timedelta(days=1)
    cid, parent = _start(store, cfg, closes)
    assert competitions.draw_due(store, cfg, closes + timedelta(minutes=1))[0].winner is None
    assert _reply(store, cfg, MEMBERS[0], parent, 1) is Entry.NONE  # drawn: no more entries
    with store.session() as s:
        comp = s.get(Competition, cid)
        assert comp is not None and competitions.verify(s, comp).ok
    with store.session() as s, pytest.raises(ValueError, match="has passed"):
        competitions.start(s, cfg, s.exec(select(MailingList)).one(), prize="p",
                           closes_at=datetime.now(UTC) - timedelta(minutes=1),
                           now=datetime.now(UTC))


def test_the_digest_lists_open_competitions_and_scheduled_posts(store: Store,
                                                                cfg: Config) -> None:
    from digests.build import collect
    from listserv import scheduled_posts

    _list(store)
    now = datetime.now(UTC)
    _start(store, cfg, now + timedelta(days=3))
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        for days, subject in ((2, "Guest post"), (30, "Too far ahead")):
            scheduled_posts.schedule(s, ml, from_address=MEMBERS[0], subject=subject,
                                     body="b", at=now + timedelta(days=days), now=now)
        digest = collect(s, ml, cfg, now - timedelta(days=7), now, volume=1, number=1)
        titles = sorted(u.title for u in digest.upcoming)
    assert titles == ["Competition: win a book token", "Guest post"]
    assert competitions.draw_due(store, cfg, now + timedelta(days=4))
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        later = collect(s, ml, cfg, now, now + timedelta(days=4), volume=1, number=2)
        assert [u.title for u in later.upcoming] == []


def test_an_entry_after_the_closing_time_but_before_the_draw_is_refused(
        store: Store, cfg: Config) -> None:
    from listserv.competition_entries import enter_address

    _list(store)
    closes = datetime.now(UTC) + timedelta(days=1)
    cid, _parent = _start(store, cfg, closes)
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        comp = s.get(Competition, cid)
        assert comp is not None
        assert enter_address(s, ml, comp, MEMBERS[0], at=closes + timedelta(seconds=1)) \
            is Entry.CLOSED
        assert enter_address(s, ml, comp, SPONSOR, at=closes) is Entry.EXCLUDED
        assert enter_address(s, ml, comp, "nobody@x.example", at=closes) is Entry.NOT_MEMBER
        assert enter_address(s, ml, comp, MEMBERS[1], at=closes) is Entry.ENTERED
        assert enter_address(s, ml, comp, MEMBERS[1], at=closes) is Entry.DUPLICATE
