"""Entering a competition from Discord: a reply in the Discord thread bridged to the
competition's list thread is a post (through the bot and the running server), and it enters
its linked member, once however many times they write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from listserv import competitions
from listserv.config import load
from listserv.models import Competition, DiscordThread, MailingList, Message
from listserv.store import Store
from tests.discord_double import DiscordDouble
from tests.harness import Running, cli, make_list, wait_until, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_bridge import JANE, MEMBERS, Discord, _link, _with_bot


def test_a_reply_in_the_bridged_thread_enters_once(tmp_path: Path, db_url: str, sink: SmtpSink,
                                                   store: Store) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE)
    cfg = load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        comp = competitions.start(s, cfg, ml, prize="a mug", now=datetime.now(UTC),
                                  closes_at=datetime.now(UTC) + timedelta(days=1))
        cid, list_thread = comp.id, comp.thread_id
    assert cid is not None and list_thread is not None

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        [thread_id] = discord.double.threads
        with store.session() as s:  # as the relay records it when it opens the thread
            s.add(DiscordThread(thread_id=list_thread, discord_thread_id=thread_id,
                                channel_id=discord.double.channels["demo-list"]))
        discord.say(thread_id, JANE, "I'd love a mug!")
        discord.say(thread_id, JANE, "Did that count?")

        def entered() -> list[str] | None:
            with store.session() as s:
                return [e.address for e in competitions.entries(s, cid)] or None

        assert wait_until(entered, what="the Discord entry") == ["jane@example.com"]
        wait_until(lambda: len(_thread_posts(store, list_thread)) == 3,
                   what="both replies posted (after the announcement)")
        assert entered() == ["jane@example.com"]

    _with_bot(tmp_path, db_url, sink, store, test, existing="Competition: win a mug")


def _comp_card(double: DiscordDouble, cid: int | None) -> dict[str, Any]:
    """The competition's card the bot posted in the bridged channel, once it is there."""
    def cards() -> list[dict[str, Any]]:
        return [r.body for r in double.requests if r.method == "POST"
                and r.path == f"/channels/{double.channels['demo-list']}/messages"
                and str(r.body.get("content", "")).startswith(f"**Competition {cid}:")]
    [card] = wait_until(cards, what="the competition's card")
    return card


def test_a_cli_competition_gets_its_card(tmp_path: Path, db_url: str, sink: SmtpSink,
                                         store: Store) -> None:
    """Started by the CLI (any door): the relay worker posts the card with Enter."""
    from tests.test_bot_commands import LINKED, _link, bot_server
    from tests.test_bot_moderation import MEMBERS as MOD_MEMBERS

    make_list(store, "demo", members=MOD_MEMBERS)
    _link(store, LINKED, MOD_MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
        with path.open("a", encoding="utf-8") as f:
            f.write(f'[discord.bridges]\ndemo = "{bot.double.channels["demo-list"]}"\n')
        out = cli(path, "competitions", "start", "demo", "--prize", "a tote bag",
                  "--closes", "next Friday 12:00")
        assert out.exit_code == 0, out.output
        cid = int(out.output)
        card = bot.card(_comp_card(bot.double, cid))
        assert "win a tote bag" in card["content"]
        pressed = bot.press(f"cr:comp:enter:{cid}", LINKED, card)
        assert "You are entered for a tote bag" in pressed["data"]["content"]


def _thread_posts(store: Store, thread_id: int) -> list[Message]:
    with store.session() as s:
        return list(s.exec(select(Message).where(Message.thread_id == thread_id)).all())


def test_competition_start_and_the_enter_button(tmp_path: Path, db_url: str, sink: SmtpSink,
                                                store: Store) -> None:
    from tests.test_bot_commands import LINKED, MOD, UNLINKED, _link, bot_server
    from tests.test_bot_moderation import MEMBERS as MOD_MEMBERS
    from tests.test_bot_moderation import MOD_USER

    make_list(store, "demo", members=MOD_MEMBERS)
    _link(store, LINKED, MOD_MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        refused = bot.ask("competition", LINKED, {"prize": "a mug", "closes": "next Friday 12:00"},
                          sub="start")
        assert "for moderators" in refused
        bad = bot.ask("competition", MOD_USER, {"prize": "a mug", "closes": "whenever"},
                      sub="start", roles=MOD)
        assert bad.startswith("Not started") and "next Friday 12:00" in bad
        _iid, body = bot.command("competition", MOD_USER, {"prize": "a mug", "closes":
                                 "next Friday 12:00", "reserves": 1}, sub="start", roles=MOD)
        with store.session() as s:
            [comp] = s.exec(select(Competition)).all()
            cid = comp.id
        assert f"Competition {cid} started on demo" in body["data"]["content"]
        public = _comp_card(bot.double, cid)  # by the relay worker, in the bridged channel
        assert "win a mug" in public["content"] and not public.get("flags")
        card = bot.card(public)
        assert [c["custom_id"] for row in card["components"] for c in row["components"]] == \
            [f"cr:comp:enter:{cid}"]
        pressed = bot.press(f"cr:comp:enter:{cid}", LINKED, card)
        assert "You are entered for a mug" in pressed["data"]["content"]
        again = bot.press(f"cr:comp:enter:{cid}", LINKED, card)
        assert "already entered" in again["data"]["content"]
        stranger = bot.press(f"cr:comp:enter:{cid}", UNLINKED, card)
        assert "/link" in stranger["data"]["content"]
        with store.session() as s:
            assert [e.address for e in competitions.entries(s, cid)] == [MOD_MEMBERS[1]]


def test_schedule_add_list_cancel(tmp_path: Path, db_url: str, sink: SmtpSink,
                                  store: Store) -> None:
    from tests.test_bot_commands import LINKED, MOD, _link, bot_server
    from tests.test_bot_moderation import MEMBERS as MOD_MEMBERS
    from tests.test_bot_moderation import MOD_USER

    make_list(store, "demo", members=MOD_MEMBERS)
    _link(store, LINKED, MOD_MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        assert "for moderators" in bot.ask("schedule", LINKED, sub="list")
        added = bot.ask("schedule", MOD_USER, {"at": "2030-01-01T09:00", "subject": "Guest post",
                                               "body": "Hello all.", "every":
                                               "every second Wednesday at 09:00",
                                               "from_email": MOD_MEMBERS[1]},
                        sub="add", roles=MOD)
        assert added.startswith("Scheduled post 1 from " + MOD_MEMBERS[1]), added
        assert "every second Wednesday at 09:00" in added
        unlinked = bot.ask("schedule", MOD_USER, {"at": "2030-01-01T09:00", "subject": "s",
                                                  "body": "b"}, sub="add", roles=MOD)
        assert "from_email:" in unlinked
        listed = bot.ask("schedule", MOD_USER, sub="list", roles=MOD)
        # Wednesday 2 January 2030, 09:00 GMT
        assert listed.startswith("**1** · <t:1893574800:F> · every second Wednesday")
        assert bot.ask("schedule", MOD_USER, {"id": 1}, sub="cancel", roles=MOD) == \
            "Cancelled scheduled post 1."
        assert bot.ask("schedule", MOD_USER, sub="list", roles=MOD) == \
            "No scheduled posts on demo."


def test_draw_verify_reserve_entrants_and_the_winners_dm(tmp_path: Path, db_url: str,
                                                        sink: SmtpSink, store: Store) -> None:
    """``/competition entrants|draw|reserve`` (moderators) and ``verify`` (anyone); the winner,
    linked, is told by DM as well as by mail; the result reaches the bridged channel."""
    from tests.test_bot_commands import LINKED, MOD, _link, bot_server
    from tests.test_bot_moderation import MEMBERS as MOD_MEMBERS
    from tests.test_bot_moderation import MOD_USER, OTHER_USER

    make_list(store, "demo", members=MOD_MEMBERS)
    _link(store, LINKED, MOD_MEMBERS[1])
    _link(store, OTHER_USER, MOD_MEMBERS[0])
    user_of = {MOD_MEMBERS[1]: LINKED, MOD_MEMBERS[0]: OTHER_USER}
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        bot.ask("competition", MOD_USER, {"prize": "a mug", "closes": "next Friday 12:00",
                                          "reserves": 1}, sub="start", roles=MOD)
        with store.session() as s:
            [comp] = s.exec(select(Competition)).all()
            cid, commitment = comp.id, comp.commitment
        card = bot.card(_comp_card(bot.double, cid))
        for user in (LINKED, OTHER_USER):
            bot.press(f"cr:comp:enter:{cid}", user, card)
        for sub in ("entrants", "draw", "cancel", "reserve"):
            assert "for moderators" in bot.ask("competition", LINKED, {"id": cid}, sub=sub)
        listed = bot.ask("competition", MOD_USER, {"id": cid}, sub="entrants", roles=MOD)
        assert listed.splitlines()[0] == f"Competition {cid} (a mug): open, 2 entrants"
        assert [line.split(" · ")[0] for line in listed.splitlines()[1:]] == \
            [f"1. {MOD_MEMBERS[1]}", f"2. {MOD_MEMBERS[0]}"]
        early = bot.ask("competition", LINKED, {"id": cid}, sub="verify")
        assert "not drawn yet" in early and commitment in early
        with store.session() as s:
            seed = s.get(Competition, cid).seed  # type: ignore[union-attr]
        assert seed not in early  # the seed stays secret until the draw

        drawn = bot.ask("competition", MOD_USER, {"id": cid}, sub="draw", roles=MOD)
        assert drawn.startswith(f"Drew competition {cid} among 2 entrants: winner ")
        winner = drawn.split("winner ")[1].split(";")[0]
        reserve = (set(MOD_MEMBERS) - {winner}).pop()
        assert f"reserves {reserve}" in drawn
        dms = wait_until(lambda: bot.double.dms_to(user_of[winner]), what="the winner's DM")
        assert len(dms) == 1 and "You won a mug" in dms[0]
        assert bot.double.dms_to(user_of[reserve]) == []
        wait_until(lambda: any(m.rcpt_tos == (winner,) and b"You won" in m.data
                               for m in sink.messages), what="the winner's mail")
        wait_until(lambda: any("The winner of a mug" in p.content for p in bot.double.posted),
                   what="the result relayed into Discord")
        channel = bot.double.channels["demo-list"]
        [closed] = bot.run(bot.double.wait_for("PATCH", f"/channels/{channel}/messages/"))
        assert "Closed" in closed.body["content"] and closed.body["components"] == []
        assert "cannot be drawn again" in bot.ask("competition", MOD_USER, {"id": cid},
                                                  sub="draw", roles=MOD)

        checked = bot.ask("competition", LINKED, {"id": cid}, sub="verify")  # anyone may
        index = [MOD_MEMBERS[1], MOD_MEMBERS[0]].index(winner) + 1
        assert checked.splitlines()[0] == f"**Competition {cid} (a mug) verifies.**"
        assert f"Commitment: `{commitment}`" in checked and f"Seed: `{seed}`" in checked
        assert f"2 entrants; winner: entrant {index}" in checked
        assert "FAIL" not in checked
        with store.session() as s:  # a published list that is not the entries as recorded
            tampered = s.get(Competition, cid)
            assert tampered is not None
            tampered.entrants = tampered.entrants.replace("b...@", "z...@")
            s.add(tampered)
        refuted = bot.ask("competition", LINKED, {"id": cid}, sub="verify")
        assert refuted.splitlines()[0] == f"**Competition {cid} (a mug) does NOT verify.**"
        assert "FAIL · the published list (2) is the entries as recorded (2)" in refuted
        with store.session() as s:
            restored = s.get(Competition, cid)
            assert restored is not None
            restored.entrants = restored.entrants.replace("z...@", "b...@")
            s.add(restored)

        moved = bot.ask("competition", MOD_USER, {"id": cid}, sub="reserve", roles=MOD)
        assert moved == f"Reserve 1 wins: {reserve}."
        dms = wait_until(lambda: bot.double.dms_to(user_of[reserve]), what="the reserve's DM")
        assert "You won a mug" in dms[0]
        assert "no reserve left" in bot.ask("competition", MOD_USER, {"id": cid}, sub="reserve",
                                            roles=MOD)
        assert bot.ask("competition", MOD_USER, {"id": cid}, sub="cancel", roles=MOD) == (
            f"Competition {cid} is drawn: only an open competition can be called off.")

        # Another one, called off before its draw: the list is told, the card closed.
        bot.ask("competition", MOD_USER, {"prize": "a pen", "closes": "next Friday 12:00"},
                sub="start", roles=MOD)
        with store.session() as s:
            other = max(c.id for c in s.exec(select(Competition)).all() if c.id is not None)
        assert bot.ask("competition", MOD_USER, {"id": other}, sub="cancel", roles=MOD) == (
            f"Cancelled competition {other}: there will be no draw; the list is told.")
        with store.session() as s:
            assert s.get(Competition, other).state == "cancelled"  # type: ignore[union-attr]
        wait_until(lambda: [m for m in sink.messages if b"a pen is cancelled" in m.data],
                   what="the list told of the call-off")
