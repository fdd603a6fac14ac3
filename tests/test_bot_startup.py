"""Bot start-up (issue 8): problems are found before or right after connecting and each says
what to fix, naming the key; the gateway resumes after a disconnect; the bot reaches the double
only through discord.py's own REST base and gateway URL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot import client, endpoints
from bot.context import BotContext
from bot.startup import (
    BRIDGE_PERMISSIONS,
    BotStartupError,
    closed_advice,
    config_problems,
    guild_problems,
    permission_problems,
)
from listserv.config import Config, load
from listserv.serve import StartupError
from listserv.store import Store
from tests.discord_double import DiscordDouble, ThreadedDouble
from tests.harness import Running, cli, make_list, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_links import USER, answer_text, discord_cfg

CHANNEL = "700000000000000001"


def _cfg(**discord_keys: str) -> Config:
    keys = {"token": "t", "guild_id": "1"} | discord_keys
    return replace(Config(), discord=replace(Config().discord, **keys), bridges={"demo": CHANNEL})


@pytest.mark.parametrize("cfg,lists,expected", [
    (_cfg(), ["demo"], []),
    (_cfg(token=""), ["demo"], ["[discord] token is not set"]),
    (_cfg(guild_id=""), ["demo"], ["[discord] guild_id is not set"]),
    (_cfg(), ["other"], ["[discord.bridges] demo: there is no list named demo (lists: other)"]),
])
def test_config_problems(cfg: Config, lists: list[str], expected: list[str]) -> None:
    problems = config_problems(cfg, lists)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


@pytest.mark.parametrize("found,kinds,expected", [
    (True, {CHANNEL: "text"}, []),
    (True, {CHANNEL: "forum"}, []),
    (False, {}, ["[discord] guild_id 1: the bot is not in that server"]),
    (True, {}, [f"[discord.bridges] demo: channel {CHANNEL} is not in the server"]),
    (True, {CHANNEL: "voice"}, [f"[discord.bridges] demo: channel {CHANNEL} is a voice channel"]),
])
def test_guild_problems(found: bool, kinds: dict[str, str], expected: list[str]) -> None:
    problems = guild_problems(_cfg(), found, kinds)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_permission_problems_name_what_is_missing_where() -> None:
    everything = set(BRIDGE_PERMISSIONS)
    assert permission_problems(_cfg(), {CHANNEL: everything}) == []
    [problem] = permission_problems(_cfg(), {CHANNEL: everything - {"manage_webhooks",
                                                                    "manage_messages"}})
    assert problem == (f"[discord.bridges] demo: in channel {CHANNEL} the bot lacks Manage "
                       "Webhooks, Manage Messages; give its role those permissions there (Edit "
                       "Channel, Permissions)")
    cfg = _cfg(digest_channel_id="900")
    [problem] = permission_problems(cfg, {CHANNEL: everything, "900": {"view_channel"}})
    assert problem.startswith("[discord] digest_channel_id: in channel 900 the bot lacks Send "
                              "Messages;")


def test_close_code_4014_says_to_enable_message_content() -> None:
    assert "Message Content Intent" in closed_advice(4014)


def test_empty_endpoints_mean_discord_itself() -> None:
    endpoints.point_at("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/")
    assert Route.BASE == "http://127.0.0.1:9/api/v10"
    endpoints.point_at("", "")
    assert Route.BASE == "https://discord.com/api/v10"
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"


async def _start(cfg: Config, store: Store) -> client.CommonroomBot:
    return await client.start(BotContext(cfg, store), ready_timeout=10, guild_ready_timeout=0.05)


async def test_a_bot_not_in_the_guild_stops_with_the_key_named(store: Store) -> None:
    double = await DiscordDouble().start()
    try:
        make_list(store)
        cfg = discord_cfg(Config(), double)
        cfg = replace(cfg, discord=replace(cfg.discord, guild_id="42"))
        with pytest.raises(BotStartupError, match=r"\[discord\] guild_id 42: the bot is not in"):
            await _start(cfg, store)
    finally:
        await double.stop()


async def test_a_guild_that_comes_after_ready_is_waited_for(store: Store) -> None:
    """READY fires after a short silence (one guild to wait for); the configured guild, listed
    in READY but sent later, is still waited for rather than reported missing."""
    double = await DiscordDouble(guild_create_delay=0.5).start()
    try:
        make_list(store)
        bot = await client.start(BotContext(discord_cfg(Config(), double), store),
                                 ready_timeout=10, guild_ready_timeout=0.05)
        try:
            guild = bot.get_guild(int(double.guild_id))
            assert guild is not None and not guild.unavailable
        finally:
            await bot.stop()
        with pytest.raises(BotStartupError, match=r"\[discord.bridges\] demo: channel"):
            await client.start(BotContext(discord_cfg(Config(), double), store),
                               ready_timeout=10, guild_ready_timeout=0.05, guild_wait=0.1)
    finally:
        await double.stop()


async def test_a_missing_bridge_channel_stops_with_the_key_named(store: Store) -> None:
    double = await DiscordDouble().start()
    try:
        make_list(store)
        cfg = discord_cfg(Config(), double, demo="4242")
        with pytest.raises(BotStartupError, match=r"\[discord.bridges\] demo: channel 4242"):
            await _start(cfg, store)
    finally:
        await double.stop()


async def test_a_bot_without_manage_webhooks_stops_saying_which_permission(store: Store) -> None:
    # Everything an administrator has but Manage Webhooks (bit 29) and Administrator (bit 3).
    double = await DiscordDouble(bot_permissions=str(((1 << 41) - 1) & ~(1 << 29) & ~(1 << 3))
                                 ).start()
    try:
        make_list(store)
        cfg = discord_cfg(Config(), double)
        with pytest.raises(BotStartupError, match=r"\[discord.bridges\] demo: in channel \d+ the "
                                                  r"bot lacks Manage Webhooks;"):
            await _start(cfg, store)
    finally:
        await double.stop()


async def test_gateway_disconnect_resumes_and_commands_still_work(store: Store) -> None:
    double = await DiscordDouble().start()
    make_list(store)
    bot = await _start(discord_cfg(Config(), double), store)
    try:
        assert double.identified == 1
        await double.drop_gateway()
        for _ in range(200):  # discord.py reconnects after a short back-off
            if double.resumed:
                break
            await asyncio.sleep(0.05)
        assert double.resumed == 1 and double.identified == 1  # resumed, not a new session
        text = answer_text(await double.callback_for(await double.interaction("help", USER)))
        assert "Commonroom" in text
    finally:
        await bot.stop()
        await double.stop()


def test_cli_bot_without_a_token_says_what_to_set(tmp_path: Path, store: Store, db_url: str) -> None:
    path = tmp_path / "commonroom.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    result = cli(path, "bot")
    assert result.exit_code == 1
    assert "[discord] token is not set" in result.output
    assert "COMMONROOM_DISCORD_TOKEN" in result.output


def test_serve_refuses_to_start_when_the_bot_cannot(tmp_path: Path, store: Store, db_url: str,
                                                    sink: SmtpSink) -> None:
    with ThreadedDouble() as threaded:
        make_list(store)
        cfg = load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
        cfg = discord_cfg(cfg, threaded.double, demo="4242")
        server = Running(cfg, store)
        try:
            with pytest.raises(StartupError, match=r"Discord bot cannot start: \[discord.bridges\] demo"):
                server.start()
        finally:  # App.start stopped what it had started; only the harness's loop is left
            server.loop.call_soon_threadsafe(server.loop.stop)
            server._thread.join(10)
            server.loop.close()
