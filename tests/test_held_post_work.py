"""Work a held post need not do (issue 12): the site secret read once per process and database,
the list's moderators once per transaction (but never stale after a change), and the checks
before telling the sender one query."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlmodel import select

from listserv import posting, subscriptions
from listserv.lists import find
from listserv.message import parse
from listserv.models import Action, MailingList, Outbox, Role
from listserv.store import Store, site_secret
from tests.archive_posts import CFG
from tests.harness import mail, make_list

POST = "demo@lists.example.org"


def statements(store: Store) -> list[str]:
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: seen.append(" ".join(sql.split())))
    return seen


def hold_posts(store: Store, senders: list[str]) -> None:
    """Non-members' posts (held) in one transaction, as one group of the group committer."""
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        for i, sender in enumerate(senders):
            raw = mail(sender, POST, f"Offer {i}")
            result = posting.post(s, CFG, ml, raw, parse(raw, domain=CFG.server.domain),
                                  envelope_from=sender)
            assert result.decision.action is Action.HOLD


def test_held_posts_of_one_transaction_read_the_moderators_and_secret_once(
        store: Store) -> None:
    make_list(store, "demo", moderators=("mod@example.org",))
    hold_posts(store, ["first@spam.example"])  # the secret made…
    store.secret()  # …and read back: kept
    seen = statements(store)
    hold_posts(store, [f"offer{i}@spam.example" for i in range(5)])
    about = {name: [q for q in seen if needle in q] for name, needle in {
        "moderators": "subscription.role IN", "secret": "FROM site_setting",
        "notice checks": "FROM sender_notice", "bans": "FROM ban"}.items()}
    assert {k: len(v) for k, v in about.items()} == {
        "moderators": 1, "secret": 0, "notice checks": 5, "bans": 1}
    with store.session() as s:
        to = sorted(o.recipient for o in s.exec(select(Outbox)).all())
    assert to.count("mod@example.org") == 6
    assert [a for a in to if a.endswith("@spam.example")] == sorted(
        ["first@spam.example"] + [f"offer{i}@spam.example" for i in range(5)])


def moderator_notices(store: Store) -> list[str]:
    with store.session() as s:
        return sorted(o.recipient for o in s.exec(select(Outbox)).all()
                      if not o.recipient.endswith("@spam.example"))


def test_a_moderator_added_mid_run_gets_the_next_held_notice(store: Store) -> None:
    make_list(store, "demo", moderators=("mod@example.org",))
    hold_posts(store, ["one@spam.example"])
    with store.session() as other:  # the web pages, say: another transaction
        ml = other.exec(select(MailingList)).one()
        subscriptions.add_member(other, ml, "new@example.org", role=Role.MODERATOR)
    hold_posts(store, ["two@spam.example"])
    assert moderator_notices(store) == ["mod@example.org", "mod@example.org", "new@example.org"]


def test_a_moderator_added_in_the_same_transaction_counts_at_once(store: Store) -> None:
    make_list(store, "demo", moderators=("mod@example.org",), members=("ann@example.org",))
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        assert ml.id is not None
        assert subscriptions.moderators(s, ml.id) == ["mod@example.org"]
        subscriptions.add_member(s, ml, "new@example.org", role=Role.MODERATOR)
        assert subscriptions.moderators(s, ml.id) == ["mod@example.org", "new@example.org"]
        subscriptions.add_member(s, ml, "ann@example.org", role=Role.OWNER)  # raised
        assert "ann@example.org" in subscriptions.moderators(s, ml.id)
        subscriptions.remove_member(s, ml, "mod@example.org")
        assert subscriptions.moderators(s, ml.id) == ["ann@example.org", "new@example.org"]


def test_the_secret_is_read_once_and_a_rolled_back_one_is_not_kept(store: Store) -> None:
    seen = statements(store)
    with pytest.raises(RuntimeError), store.session() as s:
        made = site_secret(s)
        raise RuntimeError("rolled back: the secret made here was never stored")
    with store.session() as s:
        kept = site_secret(s)
    assert kept != made
    for _ in range(3):
        with store.session() as s:
            assert site_secret(s) == kept
    # Made twice (the first rolled back), read back once, then kept.
    assert len([q for q in seen if "FROM site_setting" in q]) == 3
