"""The moderators' commands through the wire (issue 8): /queue, /approve, /reject, /discard as
gateway INTERACTION_CREATE events against the Discord API double, acting through
``listserv.moderation`` on a server that holds a stranger's post received over SMTP."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from bot.cogs.moderation import queue_text
from bot.roles import is_moderator
from listserv.config import load
from listserv.models import AuditEntry, Held, utcnow
from listserv.moderation import QueueItem
from listserv.store import Store
from tests.bot_harness import bot_server
from tests.discord_double import ThreadedDouble
from tests.harness import DOMAIN, mail, make_list, parse, running, wait_until, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_links import answer_text, discord_cfg

MOD_USER = "777777777777777777"
OTHER_USER = "888888888888888888"
MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk")
OUTSIDER = "dan@elsewhere.example"
POST = f"demo@{DOMAIN}"


def test_is_moderator_by_role_name_or_id() -> None:
    roles = [("123", "Moderators"), ("456", "Members")]
    assert is_moderator(roles, "Moderators")
    assert is_moderator(roles, "moderators")
    assert is_moderator(roles, "123")
    assert not is_moderator(roles, "Admins")
    assert not is_moderator(roles, "999")
    assert not is_moderator(roles, "")  # nobody, when no role is configured
    assert not is_moderator([], "Moderators")


def test_queue_text_stays_under_discords_limit() -> None:
    items = [QueueItem(n, "demo", "a@example.org", "x" * 80, "not a member", utcnow())
             for n in range(1, 60)]
    text = queue_text(items)
    assert len(text) <= 2000
    assert "**1** · demo · a@example.org" in text
    assert text.endswith("more (`/queue list:` shows one list's)")
    assert queue_text([]) == "Nothing is held."


def _delivered(sink: SmtpSink, subject: str) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in sink.messages
                  if str(parse(m.data)["Subject"]).startswith(f"[demo] {subject}"))


def test_queue_approve_and_a_non_moderator_is_refused(tmp_path: Path, db_url: str,
                                                      sink: SmtpSink, store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with bot_server(tmp_path, db_url, sink, store) as (ask, server, _double, perms):
        for name in ("queue", "approve", "reject", "discard"):
            assert int(perms[name]) == 1 << 13, (name, perms)  # manage messages: a hint
        assert perms["help"] is None

        server.send(OUTSIDER, POST, mail(OUTSIDER, POST, "Can I ask about CRMs?"))
        server.drain()
        with store.session() as s:
            [held] = s.exec(select(Held)).all()
            held_id = held.id
        sink.messages.clear()

        # Someone without the role: refused, saying which role; nothing changes.
        for name, opts in (("queue", None), ("approve", {"id": held_id}),
                           ("reject", {"id": held_id, "reason": "no"}),
                           ("discard", {"id": held_id})):
            text = ask(name, OTHER_USER, opts)
            assert "Moderators" in text and "moderators" in text, text
            assert "CRMs" not in text
        with store.session() as s:
            assert s.get(Held, held_id).resolved_at is None  # type: ignore[union-attr]

        listing = ask("queue", MOD_USER, roles=("Moderators",))
        assert f"**{held_id}** · demo · {OUTSIDER} · Can I ask about CRMs?" in listing
        assert ask("queue", MOD_USER, {"list": "demo"}, roles=("Moderators",)) == listing
        assert "no list called 'nope'" in ask("queue", MOD_USER, {"list": "nope"},
                                              roles=("Moderators",))

        text = ask("approve", MOD_USER, {"id": held_id}, roles=("Moderators",))
        assert text.startswith(f"held post {held_id} approved"), text
        wait_until(lambda: _delivered(sink, "Can I ask about CRMs?") == list(MEMBERS),
                   what="the approved post delivered to the members")
        again = ask("approve", MOD_USER, {"id": held_id}, roles=("Moderators",))
        assert "already handled" in again
        assert ask("queue", MOD_USER, roles=("Moderators",)) == "Nothing is held."
        with store.session() as s:
            actors = [e.actor for e in s.exec(select(AuditEntry))
                      if e.action == "held-accept"]
        assert actors == [f"discord:{MOD_USER} (user{MOD_USER[-4:]})"]


def test_reject_and_discard_by_role_id(tmp_path: Path, db_url: str, sink: SmtpSink,
                                       store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with ThreadedDouble() as threaded:
        double = threaded.double
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          double)
        role_id = double.roles["Moderators"]

        def ask(name: str, options: dict[str, object]) -> str:
            iid = threaded.call(double.interaction(name, MOD_USER, options, roles=(role_id,)))
            return answer_text(threaded.call(double.callback_for(iid)))

        with running(cfg, store) as server:
            for subject in ("First", "Second"):
                server.send(OUTSIDER, POST, mail(OUTSIDER, POST, subject))
            server.drain()
            with store.session() as s:
                first, second = [h.id for h in s.exec(select(Held).order_by(Held.id))]  # type: ignore[arg-type]
            sink.messages.clear()
            assert ask("reject", {"id": first, "reason": "off topic"}).startswith(
                f"held post {first} rejected")
            assert ask("discard", {"id": second}).startswith(f"held post {second} discarded")
            server.drain()
            assert _delivered(sink, "First") == [] and _delivered(sink, "Second") == []
            with store.session() as s:
                assert {h.resolution for h in s.exec(select(Held))} == {"reject", "discard"}
