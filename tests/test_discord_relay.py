"""The relay queue's bookkeeping (``listserv.discord_relay``): what is due (the oldest pending
row of each list, once its time has come), what a post's relay needs, parts recorded, retries
and failures, and thread mappings that are never replaced."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import col, select

from listserv import discord_relay, posting
from listserv.config import Config
from listserv.lists import find
from listserv.message import parse
from listserv.models import DiscordPost, DiscordRelay, DiscordThread, Thread, utcnow
from listserv.store import Store
from tests.harness import mail, make_list

CHANNEL = "333333333333333333"
CFG = replace(Config(), bridges={"demo": CHANNEL, "other": "444444444444444444"})


def _post(store: Store, subject: str, list_name: str = "demo", **headers: str) -> int:
    raw = mail("ann@example.org", f"{list_name}@{CFG.server.domain}", subject, headers=headers)
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        result = posting.post(s, CFG, ml, raw, parse(raw, domain=CFG.server.domain),
                              envelope_from="ann@example.org")
        assert result.message_pk is not None
        return result.message_pk


def _rows(store: Store) -> list[DiscordRelay]:
    with store.session() as s:
        return list(s.exec(select(DiscordRelay).order_by(col(DiscordRelay.id))))


def _due(store: Store) -> list[int | None]:
    with store.read_session() as s:
        return [j.message_pk or j.id for j in discord_relay.due(s)]


@pytest.fixture
def lists(store: Store) -> None:
    make_list(store, "demo", members=("ann@example.org",), policy_scope="off")
    make_list(store, "other", members=("ann@example.org",), policy_scope="off")


@pytest.mark.usefixtures("lists")
def test_due_is_the_oldest_pending_row_of_each_list(store: Store) -> None:
    a1, b1, a2 = _post(store, "A1"), _post(store, "B1", "other"), _post(store, "A2")
    assert _due(store) == [a1, b1]
    ids = {r.message_pk: r.id for r in _rows(store)}
    with store.session() as s:
        discord_relay.retry_later(s, ids[a1] or 0, "Discord unreachable", 60)
    assert _due(store) == [b1]  # a1 waits, and a2 waits behind it
    with store.session() as s:
        discord_relay.finish(s, ids[b1] or 0)
        discord_relay.give_up(s, ids[a1] or 0, "403")
    assert _due(store) == [a2]
    [r1, _, r2] = _rows(store)
    assert (r1.state, r1.attempts, r1.last_error) == ("failed", 2, "403")
    assert r2.state == "pending"


@pytest.mark.usefixtures("lists")
def test_channel_messages_without_a_list_queue_on_their_own(store: Store) -> None:
    from listserv.discord_bridge import queue_channel_message
    with store.session() as s:
        queue_channel_message(s, None, "555", "digest one")
        queue_channel_message(s, None, "555", "digest two")
        queue_channel_message(s, None, "", "no channel: nothing queued")
    a1 = _post(store, "A1")
    with store.read_session() as s:
        jobs = discord_relay.due(s)
    assert [(j.kind, j.content, j.message_pk) for j in jobs] == [
        ("channel", "digest one", None), ("post", "", a1)]


@pytest.mark.usefixtures("lists")
def test_post_plan_and_parts(store: Store) -> None:
    first = _post(store, "Lunch", "demo", **{"Message-ID": "<l1@example.org>"})
    reply = _post(store, "Re: [demo] Lunch", "demo", **{"In-Reply-To": "<l1@example.org>"})
    with store.session() as s:
        plan = discord_relay.post_plan(s, CFG, first)
        assert plan is not None
        assert (plan.list_name, plan.channel_id, plan.discord_thread_id) == ("demo", CHANNEL, None)
        assert plan.source.thread_subject == "Lunch" and plan.source.author.address == "ann@example.org"
        discord_relay.record_thread(s, plan.source.thread_id, "900", CHANNEL)
    with store.session() as s:
        again = discord_relay.post_plan(s, CFG, reply)
        assert again is not None and again.discord_thread_id == "900"
        # Neither side of a mapping is ever replaced.
        discord_relay.record_thread(s, again.source.thread_id, "901", CHANNEL)
        other = Thread(list_id=1, subject="x")
        s.add(other)
        s.flush()
        assert other.id is not None
        discord_relay.record_thread(s, other.id, "900", CHANNEL)
    with store.read_session() as s:
        assert [(m.discord_thread_id) for m in s.exec(select(DiscordThread))] == ["900"]
    relay_id = _rows(store)[0].id or 0
    with store.session() as s:
        discord_relay.part_sent(s, relay_id, "1001")
        discord_relay.part_sent(s, relay_id, "1002")
    [row, _] = _rows(store)
    assert (row.parts_sent, row.discord_message_ids) == (2, "1001 1002")
    # A list no longer bridged, or a post that is gone: nothing to relay.
    with store.read_session() as s:
        assert discord_relay.post_plan(s, replace(CFG, bridges={}), first) is None
        assert discord_relay.post_plan(s, CFG, 999_999) is None


@pytest.mark.usefixtures("lists")
def test_a_post_written_in_discord_goes_back_to_its_thread(store: Store) -> None:
    pk = _post(store, "From Discord")
    with store.session() as s:
        s.add(DiscordPost(discord_message_id="77", message_pk=pk, discord_thread_id="950",
                          discord_user_id="5"))
    with store.read_session() as s:
        plan = discord_relay.post_plan(s, CFG, pk)
    assert plan is not None and plan.discord_thread_id == "950"


@pytest.mark.usefixtures("lists")
def test_retry_later_counts_attempts(store: Store) -> None:
    _post(store, "A1")
    relay_id = _rows(store)[0].id or 0
    before = utcnow()
    with store.session() as s:
        at = discord_relay.retry_later(s, relay_id, "x" * 900, 30)
    [row] = _rows(store)
    assert row.attempts == 1 and len(row.last_error) == 500
    assert before + timedelta(seconds=29) < at < utcnow() + timedelta(seconds=31)


@pytest.mark.usefixtures("lists")
def test_a_claimed_row_is_written_by_one_worker_only(store: Store) -> None:
    """Two relay workers on one store (two processes that both run the bot, which the bot's
    lease is there to prevent): the row one of them writes is not offered to the other."""
    a1, b1 = _post(store, "A1"), _post(store, "B1", "other")
    ids = {r.message_pk: r.id or 0 for r in _rows(store)}
    with store.session() as s:
        mine = discord_relay.claim(s, ids[a1], "worker-1")
    assert mine is not None and mine.message_pk == a1
    assert _due(store) == [b1]  # worker 2 sees only the other list's row
    with store.session() as s:
        assert discord_relay.claim(s, ids[a1], "worker-2") is None
        discord_relay.finish(s, ids[a1])
    with store.session() as s:  # written: nobody may claim it again
        assert discord_relay.claim(s, ids[a1], "worker-1") is None


@pytest.mark.usefixtures("lists")
def test_claims_end_with_the_attempt_or_when_the_next_worker_starts(store: Store) -> None:
    a1, b1 = _post(store, "A1"), _post(store, "B1", "other")
    ids = {r.message_pk: r.id or 0 for r in _rows(store)}
    with store.session() as s:
        assert discord_relay.claim(s, ids[a1], "worker-1") is not None
        assert discord_relay.claim(s, ids[b1], "worker-1") is not None
    with store.session() as s:
        discord_relay.retry_later(s, ids[a1], "Discord unreachable", 0)
    assert _due(store) == [a1]  # the failed attempt let go of it
    with store.session() as s:  # worker-1 stopped mid-row; worker-2 starts
        assert discord_relay.clear_claims(s, "worker-2") == 1
    assert _due(store) == [a1, b1]
