"""Which posts are queued for relay into Discord (``listserv.discord_bridge``), in the
transaction that releases them: accepted or approved posts of a bridged list, once each; not
posts of other lists, not held ones, not those written in Discord and accepted on arrival."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import col, select

from listserv import moderation, posting
from listserv.config import Config
from listserv.lists import find
from listserv.message import parse
from listserv.models import Action, DiscordRelay
from listserv.store import Store
from tests.harness import mail, make_list

CFG = replace(Config(), bridges={"demo": "333333333333333333"})


def _post(store: Store, sender: str, subject: str, *, list_name: str = "demo",
          from_discord: bool = False) -> posting.PostResult:
    raw = mail(sender, f"{list_name}@{CFG.server.domain}", subject)
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        return posting.post(s, CFG, ml, raw, parse(raw, domain=CFG.server.domain),
                            envelope_from=sender, from_discord=from_discord)


def _relayed(store: Store) -> list[int | None]:
    with store.read_session() as s:
        return list(s.exec(select(DiscordRelay.message_pk).order_by(col(DiscordRelay.id))))


def test_accepted_posts_of_a_bridged_list_are_queued_once_in_order(store: Store) -> None:
    make_list(store, "demo", members=("ann@example.org",))
    make_list(store, "other", members=("ann@example.org",))
    first = _post(store, "ann@example.org", "First")
    _post(store, "ann@example.org", "Elsewhere", list_name="other")
    second = _post(store, "ann@example.org", "Second")
    assert _relayed(store) == [first.message_pk, second.message_pk]


def test_a_post_from_discord_accepted_on_arrival_is_not_echoed(store: Store) -> None:
    make_list(store, "demo", members=("ann@example.org",))
    _post(store, "ann@example.org", "Said in Discord", from_discord=True)
    assert _relayed(store) == []


def test_held_posts_are_queued_only_when_approved(store: Store) -> None:
    make_list(store, "demo", members=("ann@example.org",))
    held = _post(store, "stranger@example.com", "Can I ask?", from_discord=True)
    assert held.held_id is not None and _relayed(store) == []
    with store.session() as s:
        assert moderation.act(s, CFG, held.held_id, Action.ACCEPT, actor="test").ok
    assert _relayed(store) == [held.message_pk]
