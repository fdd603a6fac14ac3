"""The bridge from Discord to the list: a message in a thread of a bridged channel goes through
``listserv.discord_inbound.submit`` (the posting pipeline, as email does).

Invariants:
- Only people's messages in threads whose parent is a bridged channel are read; anything a bot
  or a webhook wrote (this bot's own relays included) is ignored, so nothing echoes.
- Submissions run one at a time, and ``submit`` is idempotent on the Discord message id, so an
  event Discord delivers twice (around a disconnect and RESUME) becomes one post.
- A message that did not go to the list as written (held, rejected, discarded) is removed from
  the thread and its author told privately why; held, it waits in the moderators' queue and,
  approved, the relay posts it back with the author's name.
- An unlinked author is told how to link at most once a day (in private; in the thread, with no
  mentions, if their DMs are closed); nothing goes to the list.
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord
from discord.ext import commands

from bot.context import BotContext
from listserv import discord_inbound
from listserv.discord_inbound import DiscordMessage, Outcome, Result

log = logging.getLogger("commonroom.bot.bridge")

REMIND_EVERY = 24 * 3600.0  # seconds between "how to link" reminders to one person
LIMIT = 1900  # below Discord's 2000 characters per message (a policy reason can be long)
MESSAGE_KINDS = (discord.MessageType.default, discord.MessageType.reply)


def bridged_thread(message: discord.Message, bridged: set[str]) -> discord.Thread | None:
    """The bridged thread ``message`` was written in by a person, or None."""
    if message.author.bot or message.webhook_id is not None:
        return None
    if message.type not in MESSAGE_KINDS:  # pins, joins, "started a thread"
        return None
    channel = message.channel
    if isinstance(channel, discord.Thread) and str(channel.parent_id) in bridged:
        return channel
    return None


def read(message: discord.Message, thread: discord.Thread) -> DiscordMessage:
    return DiscordMessage(user_id=str(message.author.id), message_id=str(message.id),
                          thread_id=str(thread.id), channel_id=str(thread.parent_id),
                          thread_name=thread.name, content=message.content,
                          attachments=tuple(a.url for a in message.attachments),
                          author_name=message.author.display_name)


class Bridge(commands.Cog):
    def __init__(self, ctx: BotContext, bot: commands.Bot) -> None:
        self.ctx = ctx
        self.bot = bot
        self._one_at_a_time = asyncio.Lock()
        self._reminded: dict[int, float] = {}  # user id -> monotonic time of the last reminder

    @property
    def _bridged(self) -> set[str]:
        return set(self.ctx.cfg.bridges.values())

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        thread = await self._thread_of(message)
        if thread is None:
            return
        dm = read(message, thread)
        context = {"discord_message": dm.message_id, "discord_user": dm.user_id,
                   "discord_thread": dm.thread_id}
        try:
            async with self._one_at_a_time:
                outcome = await asyncio.to_thread(self._submit, dm)
        except Exception:  # a bug or the store down: say which message, keep serving
            log.exception("Discord message %s from %s could not be posted; it stays in Discord "
                          "and did not reach the list", dm.message_id, dm.user_id, extra=context)
            return
        context |= {"list": outcome.list_name, "result": outcome.result.value}
        log.info("Discord message %s from %s: %s", dm.message_id, dm.user_id,
                 outcome.result.value, extra=context)
        if outcome.result in (Result.ACCEPTED, Result.HELD, Result.REJECTED):
            self.ctx.mail_queued()  # the fan-out, or the moderators' and sender's notices
        if outcome.remove:
            await self._remove(message, outcome)
            await self._tell(message, outcome.text, reply_if_closed=False)
        elif outcome.result is Result.NOT_LINKED and self._may_remind(message.author.id):
            await self._tell(message, outcome.text, reply_if_closed=True)

    async def _thread_of(self, message: discord.Message) -> discord.Thread | None:
        thread = bridged_thread(message, self._bridged)
        if thread is not None or not isinstance(message.channel, discord.PartialMessageable):
            return thread
        # A thread discord.py has not been told about (no THREAD_CREATE seen): ask Discord.
        if message.author.bot or message.webhook_id is not None or message.guild is None:
            return None
        try:
            channel = await self.bot.fetch_channel(message.channel.id)
        except discord.HTTPException:
            return None
        if isinstance(channel, discord.Thread) and str(channel.parent_id) in self._bridged:
            return channel
        return None

    def _submit(self, dm: DiscordMessage) -> Outcome:
        with self.ctx.store.session() as s:
            return discord_inbound.submit(s, self.ctx.cfg, dm)

    def _may_remind(self, user_id: int) -> bool:
        now = time.monotonic()
        last = self._reminded.get(user_id)
        if last is not None and now - last < REMIND_EVERY:
            return False
        self._reminded[user_id] = now
        return True

    async def _remove(self, message: discord.Message, outcome: Outcome) -> None:
        try:
            await message.delete()
        except discord.NotFound:
            pass  # the author deleted it first
        except discord.Forbidden:
            log.warning("cannot remove %s message %s from the thread: give the bot Manage "
                        "Messages in the bridged channel", outcome.result.value, message.id,
                        extra={"list": outcome.list_name, "discord_message": str(message.id)})

    async def _tell(self, message: discord.Message, text: str, *, reply_if_closed: bool) -> None:
        text = text if len(text) <= LIMIT else text[:LIMIT - 1] + "…"
        try:
            await message.author.send(text)
            return
        except discord.HTTPException as e:  # DMs closed (50007), or Discord failing
            log.info("cannot write to Discord user %s in private: %s", message.author.id, e,
                     extra={"discord_user": str(message.author.id)})
        if reply_if_closed:
            try:
                await message.reply(text, mention_author=False,
                                    allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException as e:
                log.warning("cannot answer in thread %s: %s", message.channel.id, e)
