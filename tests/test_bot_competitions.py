"""Entering a competition from Discord: a reply in the Discord thread bridged to the
competition's list thread is a post (through the bot and the running server), and it enters
its linked member, once however many times they write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from listserv import competitions
from listserv.config import load
from listserv.models import DiscordThread, MailingList, Message
from listserv.store import Store
from tests.harness import Running, make_list, wait_until, write_config
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


def _thread_posts(store: Store, thread_id: int) -> list[Message]:
    with store.session() as s:
        return list(s.exec(select(Message).where(Message.thread_id == thread_id)).all())
