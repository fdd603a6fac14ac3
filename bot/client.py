"""The Discord client: a discord.py ``commands.Bot`` with one cog per feature, and ``start``,
which connects it and checks the configuration against what Discord reports.

Invariants:
- ``start`` returns a bot that is connected, in the configured guild, with every bridged
  channel present and the slash commands synced to that guild; otherwise it closes what it
  opened and raises ``BotStartupError`` saying what to fix.
- Intents are only what is used: guilds (channels and threads), guild messages and message
  content (the bridge reads what people write in bridged threads).
- Nothing the bot sends can ping anyone: allowed mentions are empty for the whole client.
- The relay worker (``bot/relay.py``) runs as long as the bot, from ``setup_hook`` to ``stop``.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.admin import Admin
from bot.cogs.bridge import Bridge
from bot.cogs.competitions import Competitions
from bot.cogs.digests import Digests
from bot.cogs.events import Events
from bot.cogs.held import HeldButton
from bot.cogs.links import Links
from bot.cogs.members import Members
from bot.cogs.moderation import Moderation
from bot.cogs.schedule import Schedule
from bot.cogs.subscribe import Subscribe
from bot.competition_card import EnterButton
from bot.context import BotContext
from bot.endpoints import point_at
from bot.event_card import EventButton
from bot.relay import RelayWorker
from bot.startup import (
    BRIDGE_PERMISSIONS,
    DIGEST_PERMISSIONS,
    BotStartupError,
    closed_advice,
    config_problems,
    guild_problems,
    permission_problems,
)
from listserv import lists

log = logging.getLogger("commonroom.bot")


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    return wanted


# discord.py fires READY once no GUILD_CREATE has come for this long (its default is 2 s, made
# for bots in many guilds). Commonroom serves one guild, whose GUILD_CREATE follows READY at
# once; ``start`` still waits (up to GUILD_WAIT) for that guild if it is late, and guilds that
# come later are handled by discord.py as they arrive.
GUILD_READY_TIMEOUT = 0.3
GUILD_WAIT = 10.0


class CommonroomBot(commands.Bot):
    def __init__(self, ctx: BotContext, *,
                 guild_ready_timeout: float = GUILD_READY_TIMEOUT) -> None:
        super().__init__(command_prefix=commands.when_mentioned, help_command=None,
                         intents=intents(), allowed_mentions=discord.AllowedMentions.none(),
                         guild_ready_timeout=guild_ready_timeout)
        self.ctx = ctx
        self.guild_ref = discord.Object(int(ctx.cfg.discord.guild_id))
        self.runner: asyncio.Task[None] | None = None
        self.relay = RelayWorker(self, ctx)  # email -> Discord; starts writing once ready

    async def setup_hook(self) -> None:
        await self.add_cog(Links(self.ctx), guild=self.guild_ref)
        await self.add_cog(Moderation(self.ctx), guild=self.guild_ref)
        await self.add_cog(Admin(self.ctx), guild=self.guild_ref)
        await self.add_cog(Bridge(self.ctx, self))
        await self.add_cog(Members(self.ctx), guild=self.guild_ref)
        await self.add_cog(Digests(self.ctx), guild=self.guild_ref)
        await self.add_cog(Subscribe(self.ctx), guild=self.guild_ref)
        await self.add_cog(Competitions(self.ctx), guild=self.guild_ref)
        await self.add_cog(Schedule(self.ctx), guild=self.guild_ref)
        self.add_dynamic_items(EnterButton)  # a competition's Enter, after a restart too
        self.add_dynamic_items(HeldButton)  # the held-post buttons, from any message, any time
        await self.add_cog(Events(self.ctx), guild=self.guild_ref)
        self.add_dynamic_items(EventButton)  # an event's Attend / Leave
        self.tree.error(self.on_app_command_error)
        self.relay.start()

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """The one place a failed command becomes a friendly reply."""
        log.error("/%s failed", interaction.command.name if interaction.command else "?",
                  exc_info=error)
        text = "Sorry, that did not work; the moderators can see what went wrong in the log."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    async def stop(self) -> None:
        await self.relay.stop()
        await self.close()
        if self.runner is not None:
            await asyncio.gather(self.runner, return_exceptions=True)


def _channel_kinds(guild: discord.Guild) -> dict[str, str]:
    return {str(c.id): c.type.name for c in guild.channels}


def _granted(guild: discord.Guild) -> dict[str, set[str]]:
    """Each channel's permissions for the bot that start-up checks, by ``discord.Permissions``
    attribute (read one by one: iterating Permissions skips aliases such as view_channel)."""
    checked = set(BRIDGE_PERMISSIONS) | set(DIGEST_PERMISSIONS)
    granted = {}
    for channel in guild.channels:
        perms = channel.permissions_for(guild.me)
        granted[str(channel.id)] = {name for name in checked if getattr(perms, name)}
    return granted


async def start(ctx: BotContext, *, ready_timeout: float = 60.0,
                guild_ready_timeout: float = GUILD_READY_TIMEOUT,
                guild_wait: float = GUILD_WAIT) -> CommonroomBot:
    cfg = ctx.cfg
    names = await asyncio.to_thread(_list_names, ctx)
    problems = config_problems(cfg, names)
    if problems:
        raise BotStartupError("\n".join(problems))
    point_at(cfg.discord.api_base, cfg.discord.gateway_url)
    bot = CommonroomBot(ctx, guild_ready_timeout=guild_ready_timeout)
    try:
        await _connect(bot, ready_timeout)
        guild = await _our_guild(bot, guild_wait)
        problems = guild_problems(cfg, guild is not None,
                                  _channel_kinds(guild) if guild is not None else {})
        if guild is not None and not problems:
            problems = permission_problems(cfg, _granted(guild))
        if problems:
            raise BotStartupError("\n".join(problems))
        await bot.tree.sync(guild=bot.guild_ref)
    except BaseException:
        await bot.stop()
        raise
    log.info("Discord bot ready in %s as %s", guild, bot.user)
    return bot


async def _connect(bot: CommonroomBot, ready_timeout: float) -> None:
    where = bot.ctx.cfg.discord.api_base or "Discord"
    try:
        await bot.login(bot.ctx.cfg.discord.token)
    except discord.LoginFailure:
        raise BotStartupError("[discord] token: Discord refused it; reset it in the developer "
                              "portal (Bot, Reset Token) and set it again") from None
    except (aiohttp.ClientError, OSError, discord.HTTPException) as e:
        raise BotStartupError(f"cannot reach {where} ({e}); check the network, or [discord] "
                              "api_base") from None
    bot.runner = asyncio.create_task(bot.connect(reconnect=True))
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({bot.runner, ready}, timeout=ready_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the process lost the bot's lease while connecting
        ready.cancel()
        raise
    if ready in done:
        return
    ready.cancel()
    if bot.runner in done:
        error = bot.runner.exception()
        if isinstance(error, discord.PrivilegedIntentsRequired):
            raise BotStartupError(closed_advice(4014))
        if isinstance(error, discord.ConnectionClosed):
            raise BotStartupError(closed_advice(error.code))
        raise BotStartupError(f"the Discord gateway failed: {error}")
    raise BotStartupError(f"the Discord gateway did not get ready within {ready_timeout:g}s "
                          "(check [discord] gateway_url and the network)")


async def _our_guild(bot: CommonroomBot, wait: float) -> discord.Guild | None:
    """The configured guild, once Discord has sent it (GUILD_CREATE); None if READY did not list
    it (the bot is not in it). A guild READY listed is unavailable until its GUILD_CREATE: wait
    up to ``wait`` seconds for that, then let the start-up checks say what is missing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    guild = bot.get_guild(bot.guild_ref.id)
    while guild is not None and guild.unavailable and loop.time() < deadline:
        await asyncio.sleep(0.05)
        guild = bot.get_guild(bot.guild_ref.id)
    return guild


def _list_names(ctx: BotContext) -> list[str]:
    with ctx.store.read_session() as s:
        return lists.all_names(s)
