"""``/digest preview`` and ``/digest send`` (moderators), ``/digest mode`` (a linked member).

A thin door over what ``commonroom digest`` calls: ``digests.send.next_digest`` and the
renderer for the preview, ``digests.send.send_period`` to send now (once per period, as from
the CLI); and over ``subscriptions.set_delivery`` for a member's own delivery, the change a
confirmation mail carries out: the Discord account was linked with a code mailed to that
address, which is the same proof. Discord shows ``/digest`` to everyone (a group's subcommands
cannot have their own ``default_member_permissions``), so preview and send check the moderator
role on every call. Answers are ephemeral.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, list_or_ask, moderator_list
from bot.context import BotContext
from digests import render
from digests import send as digest_send
from listserv import discord_links, lists, subscriptions
from listserv.models import DeliveryMode, utcnow

LIMIT = 1900
MODES = [app_commands.Choice(name="each post as it is sent", value=DeliveryMode.EACH.value),
         app_commands.Choice(name="weekly digest, plain text", value=DeliveryMode.PLAIN.value),
         app_commands.Choice(name="weekly digest, MIME", value=DeliveryMode.MIME.value),
         app_commands.Choice(name="weekly digest, HTML", value=DeliveryMode.HTML.value),
         app_commands.Choice(name="no mail (stay subscribed)", value=DeliveryMode.NOMAIL.value)]


def preview_text(head: str, text: str, limit: int = LIMIT) -> str:
    """``head`` and the digest's text in a code block, cut at a line with what was left out."""
    body = text.replace("```", "'''")
    room = limit - len(head) - 80
    if len(body) > room:
        cut = body.rfind("\n", 0, room)
        cut = cut if cut > 0 else room
        left = body[cut:].count("\n") + 1
        body = (body[:cut] + f"\n… {left} more lines (`commonroom digest preview` shows it "
                "all)")
    return f"{head}\n```\n{body}\n```"


class Digests(commands.Cog):
    digest = app_commands.Group(name="digest", description="The weekly digest: preview, send, "
                                "or choose how you get the list")

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @digest.command(name="preview", description="The next digest as it stands (moderators)")
    @app_commands.describe(list="The list (default: the bridged one)")
    async def preview(self, interaction: discord.Interaction, list: str | None = None) -> None:
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        text = await asyncio.to_thread(self._preview, name)
        await interaction.response.send_message(text, ephemeral=True)

    @digest.command(name="send", description="Send the list's digest now (moderators)")
    @app_commands.describe(list="The list (default: the bridged one)")
    async def send(self, interaction: discord.Interaction, list: str | None = None) -> None:
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)  # building takes a while
        text = await asyncio.to_thread(self._send, name, actor_for(interaction.user))
        await interaction.followup.send(text, ephemeral=True)

    @digest.command(name="mode", description="How you get the list: each post, a digest, or none")
    @app_commands.describe(mode="What you want", list="The list (default: the bridged one)")
    @app_commands.choices(mode=MODES)
    async def mode(self, interaction: discord.Interaction, mode: str,
                   list: str | None = None) -> None:
        name = await list_or_ask(self.ctx, interaction, list)
        if name is None:
            return
        text = await asyncio.to_thread(self._mode, str(interaction.user.id), name,
                                       DeliveryMode(mode))
        await interaction.response.send_message(text, ephemeral=True)

    def _preview(self, name: str) -> str:
        with self.ctx.store.read_session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            digest = digest_send.next_digest(s, self.ctx.cfg, ml, utcnow())
        posts = sum(t.new_posts for t in digest.threads)
        head = (f"Next digest of **{name}**: {len(digest.threads)} threads, {posts} posts since "
                f"{digest.period_start:%Y-%m-%d %H:%M} UTC")
        return preview_text(head, render.render(digest, "plain").text)

    def _send(self, name: str, actor: str) -> str:
        try:
            outcome = digest_send.send_period(self.ctx.store, self.ctx.cfg, name, end=utcnow(),
                                       trigger="discord")
        except digest_send.UnknownList as e:
            return str(e)
        if outcome.queued:
            self.ctx.mail_queued()
        return f"{outcome.message} (asked by {actor})" if outcome.recorded else outcome.message

    def _mode(self, user_id: str, name: str, mode: DeliveryMode) -> str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            email = discord_links.linked_address(s, user_id, ml)
            if email is None:
                if discord_links.linked_person(s, user_id) is None:
                    return "Link your Discord account to your address first: `/link email:`."
                return f"You are not a member of {name}: `/subscribe` to join."
            return subscriptions.set_delivery(s, ml, email, mode, via="discord",
                                              actor=f"discord:{user_id}").message
