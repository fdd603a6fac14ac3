"""The moderators' commands: ``/queue``, ``/approve``, ``/reject``, ``/discard``.

A thin door over ``listserv.moderation`` (the same queries and ``act`` as the CLI and mail
replies). Every command carries ``default_member_permissions`` (manage messages), which only
tells Discord whom to show it to, and is checked again on every call against
``[discord] moderator_role`` (``bot.roles.is_moderator``); a non-moderator is refused and
nothing changes. Every answer is ephemeral.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.context import BotContext
from bot.roles import is_moderator
from listserv import lists, moderation
from listserv.models import Action

LIMIT = 1900  # below Discord's 2000 characters per message


def actor_for(user: discord.abc.User) -> str:
    return f"discord:{user.id} ({user.name})"


def queue_text(items: list[moderation.QueueItem], limit: int = LIMIT) -> str:
    if not items:
        return "Nothing is held."
    lines: list[str] = []
    for n, item in enumerate(items):
        line = (f"**{item.id}** · {item.list_name} · {item.sender} · "
                f"{item.subject or '(no subject)'} · {item.reason}")
        if sum(len(x) + 1 for x in lines) + len(line) > limit:
            lines.append(f"… and {len(items) - n} more (`/queue list:` shows one list's)")
            break
        lines.append(line)
    return "\n".join(lines)


async def refused(ctx: BotContext, interaction: discord.Interaction) -> bool:
    """True (and the refusal sent) unless the caller has the configured moderator role."""
    user = interaction.user
    roles = [(str(r.id), r.name) for r in user.roles] if isinstance(user, discord.Member) else []
    wanted = ctx.cfg.discord.moderator_role
    if is_moderator(roles, wanted):
        return False
    need = (f"the **{wanted}** role" if wanted
            else "a moderator role, and none is configured ([discord] moderator_role)")
    await interaction.response.send_message(
        f"Sorry, this command is for moderators: it needs {need}.", ephemeral=True)
    return True


class Moderation(commands.Cog):
    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    async def _refused(self, interaction: discord.Interaction) -> bool:
        return await refused(self.ctx, interaction)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="queue", description="The held posts of the bridged lists")
    @app_commands.describe(list="Only this list's held posts")
    async def queue(self, interaction: discord.Interaction, list: str | None = None) -> None:
        if await self._refused(interaction):
            return
        names = [list] if list else sorted(self.ctx.cfg.bridges)
        text = await asyncio.to_thread(self._queue, names)
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="approve", description="Approve a held post: it goes to the list")
    @app_commands.describe(id="The held post's number (/queue shows them)")
    async def approve(self, interaction: discord.Interaction, id: int) -> None:
        await self._act(interaction, id, Action.ACCEPT, "")

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
                   reason: str) -> None:
        if await self._refused(interaction):
            return
        result = await asyncio.to_thread(self._act_in_store, held_id, action,
                                         actor_for(interaction.user), reason)
        if result.ok:
            self.ctx.mail_queued()
        await interaction.response.send_message(result.message, ephemeral=True)

    def _queue(self, names: list[str]) -> str:
        items: list[moderation.QueueItem] = []
        with self.ctx.store.read_session() as s:
            for name in names:
                ml = lists.find(s, name)
                if ml is None:
                    return f"There is no list called {name!r}."
                items += moderation.pending(s, ml)
        return queue_text(items)

    def _act_in_store(self, held_id: int, action: Action, actor: str,
                      reason: str) -> moderation.ActionResult:
        with self.ctx.store.session() as s:
            return moderation.act(s, self.ctx.cfg, held_id, action, actor=actor, reason=reason)
