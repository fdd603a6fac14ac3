"""The bot through the wire (issue 8): discord.py's own HTTP and gateway code against the
Discord API double on loopback; slash commands are gateway INTERACTION_CREATE events and the
answers are the callbacks the bot POSTs. /link mails a code through the real outbox and SMTP
sink; /verify links the account in the store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import client
from bot.context import BotContext
from listserv import discord_links
from listserv.config import Config, load
from listserv.store import Store
from tests.discord_double import DiscordDouble, ThreadedDouble
from tests.harness import make_list, parse, running, wait_until, write_config
from tests.smtpsink import SmtpSink

USER = "555555555555555555"
EPHEMERAL = 64


def discord_cfg(cfg: Config, double: DiscordDouble, **bridges: str) -> Config:
    dc = replace(cfg.discord, token="test-token", guild_id=double.guild_id,
                 moderator_role="Moderators", api_base=double.api_base,
                 gateway_url=double.gateway_url)
    return replace(cfg, discord=dc, bridges=bridges or {"demo": double.channels["demo-list"]})


@pytest.fixture
async def double() -> AsyncIterator[DiscordDouble]:
    d = await DiscordDouble().start()
    yield d
    await d.stop()


@pytest.fixture
async def bot(double: DiscordDouble, store: Store) -> AsyncIterator[client.CommonroomBot]:
    make_list(store, members=("jane@example.com",))
    cfg = discord_cfg(Config(), double)
    b = await client.start(BotContext(cfg, store), ready_timeout=10, guild_ready_timeout=0.05)
    yield b
    await b.stop()


def answer_text(body: Any) -> str:
    assert body["type"] == 4  # CHANNEL_MESSAGE_WITH_SOURCE
    assert body["data"]["flags"] & EPHEMERAL
    text = body["data"]["content"]
    assert isinstance(text, str)
    return text


async def test_commands_are_synced_to_the_guild(double: DiscordDouble,
                                                bot: client.CommonroomBot) -> None:
    [sync] = await double.wait_for("PUT", f"/applications/{double.app_id}/guilds/{double.guild_id}/")
    assert {c["name"] for c in sync.body} >= {"help", "link", "verify", "unlink"}


async def test_help_says_edits_are_not_carried_to_email(double: DiscordDouble,
                                                        bot: client.CommonroomBot) -> None:
    text = answer_text(await double.callback_for(await double.interaction("help", USER)))
    assert "/link" in text
    assert "not** carried to email" in text


async def test_link_answer_is_the_same_for_members_and_strangers(
        double: DiscordDouble, bot: client.CommonroomBot, store: Store) -> None:
    member = answer_text(await double.callback_for(
        await double.interaction("link", USER, {"email": "jane@example.com"})))
    stranger = answer_text(await double.callback_for(
        await double.interaction("link", "666666666666666666", {"email": "who@example.com"})))
    assert member.replace("jane", "X") == stranger.replace("who", "X")


async def test_verify_with_a_wrong_code_links_nothing(double: DiscordDouble,
                                                      bot: client.CommonroomBot, store: Store) -> None:
    await double.callback_for(await double.interaction("link", USER, {"email": "jane@example.com"}))
    text = answer_text(await double.callback_for(
        await double.interaction("verify", USER, {"code": "not-it"})))
    assert "not right" in text
    with store.session() as s:
        assert discord_links.linked_person(s, USER) is None


def test_link_mails_a_code_and_verify_links(tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    """Through serve: the App starts the bot; the code goes out by SMTP to the sink."""
    store = Store(db_url)
    store.upgrade()
    make_list(store, members=("jane@example.com",))
    try:
        with ThreadedDouble() as threaded:
            double = threaded.double
            cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"),
                                   env={}), double)
            with running(cfg, store) as server:
                assert server.app.bot is not None
                iid = threaded.call(double.interaction("link", USER, {"email": "jane@example.com"}))
                answer_text(threaded.call(double.callback_for(iid)))
                [mail] = wait_until(lambda: [m for m in sink.messages
                                             if m.rcpt_tos == ("jane@example.com",)], what="the code")
                body = parse(mail.data).get_payload()
                assert isinstance(body, str)
                match = re.search(r"/verify code:(\d+)", body)
                assert match, body
                iid = threaded.call(double.interaction("verify", USER, {"code": match.group(1)}))
                assert "linked" in answer_text(threaded.call(double.callback_for(iid)))
                with store.session() as s:
                    assert discord_links.linked_person(s, USER) is not None
                iid = threaded.call(double.interaction("unlink", USER))
                assert "unlinked" in answer_text(threaded.call(double.callback_for(iid)))
            with store.session() as s:
                assert discord_links.linked_person(s, USER) is None
    finally:
        store.dispose()


async def test_a_failing_command_gets_a_friendly_answer(double: DiscordDouble,
                                                        bot: client.CommonroomBot, store: Store,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with store.session() as s:  # the store breaks under the command
        s.connection().execute(text("DROP TABLE discord_link_code"))
    body = await double.callback_for(await double.interaction("verify", USER, {"code": "1"}))
    assert "did not work" in answer_text(body)
    assert "/verify failed" in caplog.text
