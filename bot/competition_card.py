"""A competition's card in Discord: its Enter button.

The custom_id carries the competition (``cr:comp:enter:12``) and the button is a
``DynamicItem``, so a press is understood on any card, also after a restart; it enters the
presser's linked membership address, by the same rules as a reply in the thread (members only,
once, not after the closing time). The answer is ephemeral.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord

from bot.checks import context_of
from bot.context import BotContext
from listserv import competitions
from listserv.models import utcnow

TEMPLATE = r"cr:comp:enter:(?P<id>\d+)"


class EnterButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    def __init__(self, competition_id: int) -> None:
        super().__init__(discord.ui.Button(label="Enter", style=discord.ButtonStyle.success,
                                           custom_id=f"cr:comp:enter:{competition_id}"))
        self.competition_id = competition_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction,
                             item: discord.ui.Item[Any], match: re.Match[str]) -> EnterButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        ctx = context_of(interaction)
        text = await asyncio.to_thread(_enter, ctx, self.competition_id, str(interaction.user.id))
        await interaction.response.send_message(text, ephemeral=True)


def _enter(ctx: BotContext, competition_id: int, user_id: str) -> str:
    with ctx.store.session() as s:
        return competitions.enter_linked(s, competition_id, user_id, now=utcnow())


def card_view(competition_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(EnterButton(competition_id))
    view.stop()  # a layout only: the dynamic item answers presses
    return view
