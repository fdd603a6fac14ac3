"""The moderators' commands: ``/queue``, ``/approve``, ``/reject``, ``/discard``.

A thin door over ``listserv.moderation`` (the same queries and ``act`` as the CLI and mail
replies). Every command carries ``default_member_permissions`` (manage messages), which only
tells Discord whom to show it to, and is checked again on every call against
``[discord] moderator_role`` (``bot.checks.refused``); a non-moderator is refused and
nothing changes. Every answer is ephemeral. ``/queue`` answers with one card per held post
(``bot.cogs.held``: the policy reason and Approve / Reject / Discard buttons), at most
``MAX_CARDS`` of them.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, moderator_lists, refused
from bot.cogs.held import act, card_text, card_view
from bot.context import BotContext
from listserv import lists, moderation
from listserv.models import Action

LIMIT = 1900  # below Discord's 2000 characters per message
MAX_CARDS = 10  # one answer and nine follow-ups: a moderator's screen, not a flood


def queue_text(items: list[moderation.QueueItem], limit: int = LIMIT) -> str:
    if not items:
        return "Nothing is held."
    lines: list[str] = []
    for n, item in enumerate(items):
        line = card_text(item)
        if sum(len(x) + 1 for x in lines) + len(line) > limit:
            lines.append(f"… and {len(items) - n} more (`/queue list:` shows one list's)")
            break
        lines.append(line)
    return "\n".join(lines)


class Moderation(commands.Cog):
    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="queue", description="The held posts of the bridged lists")
    @app_commands.describe(list="Only this list's held posts")
    async def queue(self, interaction: discord.Interaction, list: str | None = None) -> None:
        names = await moderator_lists(self.ctx, interaction, list)
        if names is None:
            return
        found = await asyncio.to_thread(self._queue, names)
        if isinstance(found, str) or not found:
            await interaction.response.send_message(found or queue_text([]), ephemeral=True)
            return
        first, *others = found[:MAX_CARDS]
        await interaction.response.send_message(card_text(first), view=card_view(first.id),
                                                ephemeral=True)
        for item in others:
            await interaction.followup.send(card_text(item), view=card_view(item.id),
                                            ephemeral=True)
        if len(found) > MAX_CARDS:
            await interaction.followup.send(
                f"… and {len(found) - MAX_CARDS} more held posts: act on them with /approve, "
                "/reject or /discard and their number, or show one list's with `/queue list:`",
                ephemeral=True)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="approve", description="Approve a held post: it goes to the list")
    @app_commands.describe(id="The held post's number (/queue shows them)",
                           future="Also the sender's future posts: always accept, or always hold")
    async def approve(self, interaction: discord.Interaction, id: int,
                      future: Literal["accept", "hold"] | None = None) -> None:
        await self._act(interaction, id, Action.ACCEPT, "", future or "")

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="reject", description="Reject a held post: the sender is told why")
    @app_commands.describe(id="The held post's number (/queue shows them)",
                           reason="Why: the sender is told")
    async def reject(self, interaction: discord.Interaction, id: int, reason: str) -> None:
        await self._act(interaction, id, Action.REJECT, reason)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="discard", description="Discard a held post silently")
    @app_commands.describe(id="The held post's number (/queue shows them)")
    async def discard(self, interaction: discord.Interaction, id: int) -> None:
        await self._act(interaction, id, Action.DISCARD, "")

    async def _act(self, interaction: discord.Interaction, held_id: int, action: Action,
                   reason: str, future: str = "") -> None:
        if await refused(self.ctx, interaction):
            return
        result = await asyncio.to_thread(act, self.ctx, held_id, action,
                                         actor_for(interaction.user), reason, future)
        if result.ok:
            self.ctx.mail_queued()
        await interaction.response.send_message(result.message, ephemeral=True)

    def _queue(self, names: list[str]) -> list[moderation.QueueItem] | str:
        items: list[moderation.QueueItem] = []
        with self.ctx.store.read_session() as s:
            for name in names:
                ml = lists.find(s, name)
                if ml is None:
                    return f"There is no list called {name!r}."
                items += moderation.pending(s, ml)
        return items
