"""More moderators' commands through the wire (issue 8): /emergency, /audit, /stats, /ban and
/unban as gateway INTERACTION_CREATE events against the Discord API double, acting through the
services the CLI uses; a non-moderator is refused and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.cogs.admin import audit_text
from listserv.models import AuditEntry, Ban, MailingList, Message, utcnow
from listserv.store import Store
from tests import bot_harness
from tests.bot_harness import Ask
from tests.harness import Running, mail, make_list
from tests.smtpsink import SmtpSink
from tests.test_bot_moderation import MEMBERS, MOD_USER, OTHER_USER, OUTSIDER, POST

MOD = ("Moderators",)
ACTOR = f"discord:{MOD_USER} (user{MOD_USER[-4:]})"


@contextmanager
def bot_server(tmp_path: Path, db_url: str, sink: SmtpSink,
               store: Store) -> Iterator[tuple[Ask, Running]]:
    """The server with the bot on the double; ``ask(name, user, options, roles)`` answers."""
    with bot_harness.bot_server(tmp_path, db_url, sink, store) as (ask, server, _double, perms):
        for name in ("emergency", "audit", "stats", "ban", "unban"):
            assert int(perms[name]) == 1 << 13, (name, perms)
        yield ask, server


def _emergency(store: Store) -> bool:
    with store.session() as s:
        [ml] = s.exec(select(MailingList).where(MailingList.name == "demo")).all()
        return ml.emergency


def _audit_rows(store: Store) -> list[tuple[str, str, str, str]]:
    with store.session() as s:
        return [(e.actor, e.action, e.target, e.detail)
                for e in s.exec(select(AuditEntry).order_by(AuditEntry.id))]  # type: ignore[arg-type]


def _bans(store: Store) -> list[Ban]:
    with store.session() as s:
        return list(s.exec(select(Ban)).all())


def test_audit_text_keeps_the_newest_under_discords_limit() -> None:
    rows = [AuditEntry(id=n, list_id=1, actor="cli", action="list-setting", target=f"k{n}",
                       detail="x" * 100) for n in range(50)]
    text = audit_text(rows, "demo")
    assert len(text) <= 2000
    assert text.startswith("… ") and "older left out" in text.splitlines()[0]
    assert text.splitlines()[-1].split(" · ")[2] == "k49"
    assert audit_text([], "demo") == "No audit entries for demo."


def test_emergency_audit_stats_ban_unban(tmp_path: Path, db_url: str, sink: SmtpSink,
                                        store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with bot_server(tmp_path, db_url, sink, store) as (ask, server):
        server.send(OUTSIDER, POST, mail(OUTSIDER, POST, "Held one"))
        server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Posted one"))
        server.drain()

        # /stats: per bridged list, and for the list given.
        expected = "**demo** · 2 members · 1 posts this week · 1 held"
        assert ask("stats", MOD_USER, roles=MOD) == expected
        assert ask("stats", MOD_USER, {"list": "demo"}, roles=MOD) == expected
        assert "no list called 'nope'" in ask("stats", MOD_USER, {"list": "nope"}, roles=MOD)
        with store.session() as s:  # a post accepted eight days ago is not this week's
            [posted] = s.exec(select(Message).where(Message.subject == "Posted one")).all()
            posted.accepted_at = utcnow() - timedelta(days=8)
            s.add(posted)
        assert ask("stats", MOD_USER, roles=MOD) == expected.replace("1 posts", "0 posts")

        # /emergency: the list setting, audited with the Discord actor.
        assert not _emergency(store)
        assert ask("emergency", MOD_USER, {"list": "demo", "state": "on"},
                   roles=MOD) == "Emergency mode is on for demo."
        assert _emergency(store)
        assert _audit_rows(store)[-1] == (ACTOR, "list-setting", "emergency", "on")
        ask("emergency", MOD_USER, {"list": "demo", "state": "off"}, roles=MOD)
        assert not _emergency(store)
        assert "no list called 'nope'" in ask("emergency", MOD_USER,
                                              {"list": "nope", "state": "on"}, roles=MOD)

        # /audit: the newest n of the list, oldest first; default 10.
        last_two = ask("audit", MOD_USER, {"list": "demo", "n": 2}, roles=MOD).splitlines()
        assert [line.split(" · ")[-1] for line in last_two] == ["on", "off"], last_two
        assert all(f"{ACTOR} · list-setting · emergency" in line for line in last_two)
        assert len(ask("audit", MOD_USER, {"list": "demo", "n": 1}, roles=MOD).splitlines()) == 1
        with store.session() as s:
            demo_id = s.exec(select(MailingList.id).where(MailingList.name == "demo")).one()
            count = len(s.exec(select(AuditEntry).where(AuditEntry.list_id == demo_id)).all())
        default = ask("audit", MOD_USER, {"list": "demo"}, roles=MOD)
        assert len(default.splitlines()) == min(10, count), (count, default)

        # /ban with a duration, then refused pattern and duration with the service's message.
        text = ask("ban", MOD_USER, {"address": "Spammer@Example.ORG", "duration": "2w"},
                   roles=MOD)
        [ban] = _bans(store)
        assert text.startswith(f"Ban {ban.id}: spammer@example.org is banned from every list")
        assert ban.list_id is None and ban.expires_at is not None
        expires = ban.expires_at.replace(tzinfo=utcnow().tzinfo)
        assert abs(expires - (utcnow() + timedelta(weeks=2))) < timedelta(minutes=5)
        assert "is neither an address" in ask("ban", MOD_USER, {"address": "not an address"},
                                              roles=MOD)
        assert "is not an expiry" in ask("ban", MOD_USER,
                                         {"address": "x@example.org", "duration": "soon"},
                                         roles=MOD)
        assert len(_bans(store)) == 1
        site = ask("audit", MOD_USER, roles=MOD)  # site-wide entries: the ban
        assert f"{ACTOR} · ban-added · spammer@example.org" in site, site

        # /unban
        assert ask("unban", MOD_USER, {"id": ban.id}, roles=MOD) == (
            f"Lifted ban {ban.id} (spammer@example.org).")
        assert _bans(store) == []
        assert _audit_rows(store)[-1][:3] == (ACTOR, "ban-removed", "spammer@example.org")
        assert ask("unban", MOD_USER, {"id": ban.id}, roles=MOD) == (
            f"There is no ban number {ban.id}.")


@pytest.mark.parametrize(("name", "options"), [
    ("emergency", {"list": "demo", "state": "on"}),
    ("audit", {"list": "demo"}),
    ("stats", None),
    ("ban", {"address": "spammer@example.org"}),
    ("unban", {"id": 0}),  # the ban's id is filled in below
])
def test_non_moderator_is_refused_and_nothing_changes(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, name: str,
        options: dict[str, object] | None) -> None:
    make_list(store, "demo", members=MEMBERS)
    with store.session() as s:
        kept = Ban(pattern="kept@example.org")
        s.add(kept)
        s.flush()
        kept_id = kept.id
    if name == "unban":
        options = {"id": kept_id}
    before = _audit_rows(store)
    with bot_server(tmp_path, db_url, sink, store) as (ask, _server):
        text = ask(name, OTHER_USER, options)
    assert "Moderators" in text and "for moderators" in text, text
    assert "demo" not in text and "Ban" not in text
    assert not _emergency(store)
    assert [b.pattern for b in _bans(store)] == ["kept@example.org"]
    assert _audit_rows(store) == before

