"""An event's card in Discord: its Attend / Leave buttons and what a press does.

The buttons are a ``DynamicItem`` (``cr:event:attend:12``) so a press works on any card, also
after a restart, whoever posted it (``/event add`` or the relay worker announcing an event
made through another door). A press acts for the member the Discord account is linked to
(``/link``: the account proved it reads that address), via "discord"; the answer is ephemeral.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord

from bot.checks import context_of
from bot.context import BotContext
from listserv import discord_links, events
from listserv.models import MailingList, utcnow

TEMPLATE = r"cr:event:(?P<action>attend|leave):(?P<id>[0-9]+)"


def card_view(event_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(EventButton("attend", event_id))
    view.add_item(EventButton("leave", event_id))
    view.stop()  # a layout only: the dynamic items answer presses (see bot/cogs/held.py)
    return view


def press(ctx: BotContext, action: str, event_id: int, user_id: str) -> str:
    with ctx.store.session() as s:
        event = events.find(s, event_id)
        if event is None:
            return f"There is no event {event_id}."
        ml = s.get(MailingList, event.list_id)
        assert ml is not None
        email = discord_links.linked_address(s, user_id, ml)
        if email is None:
            if discord_links.linked_person(s, user_id) is None:
                return "Link your Discord account to your address first: `/link email:`."
            return f"Only members of {ml.name} can attend: `/subscribe` to join."
        if action == "attend":
            return events.attend(s, ctx.cfg, event, email, via="discord", now=utcnow()).message
        return events.leave(s, ctx.cfg, event, email, via="discord", now=utcnow())


class EventButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    def __init__(self, action: str, event_id: int) -> None:
        style = discord.ButtonStyle.success if action == "attend" else \
            discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label="Attend" if action == "attend" else "Leave",
                                           style=style, custom_id=f"cr:event:{action}:{event_id}"))
        self.action = action
        self.event_id = event_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction,
                             item: discord.ui.Item[Any], match: re.Match[str]) -> EventButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        ctx = context_of(interaction)
        text = await asyncio.to_thread(press, ctx, self.action, self.event_id,
                                       str(interaction.user.id))
        ctx.mail_queued()  # leaving may have moved someone up, who is told by mail
        await interaction.response.send_message(text, ephemeral=True)
