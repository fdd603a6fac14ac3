"""``/subscribe email:`` for everyone: the same double opt-in as by mail, through
``listserv.discord_subscribe`` (one answer whatever the address, a daily limit per Discord
account). The answer is ephemeral."""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import chosen_list, which_list
from bot.context import BotContext
from listserv import discord_subscribe, lists


class Subscribe(commands.Cog):
    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @app_commands.command(name="subscribe", description="Join a list by email: a confirmation "
                          "link is mailed to the address")
    @app_commands.describe(email="Your email address", list="The list (default: the bridged one)")
    async def subscribe(self, interaction: discord.Interaction, email: str,
                        list: str | None = None) -> None:
        name = chosen_list(self.ctx.cfg.bridges, list)
        if name is None:
            text = which_list(self.ctx.cfg.bridges)
        else:
            text = await asyncio.to_thread(self._request, name, str(interaction.user.id), email)
            self.ctx.mail_queued()
        await interaction.response.send_message(text, ephemeral=True)

    def _request(self, name: str, user_id: str, email: str) -> str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            return discord_subscribe.request(s, self.ctx.cfg, ml, user_id, email).text
