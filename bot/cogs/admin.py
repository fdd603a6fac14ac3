"""More moderators' commands: ``/emergency``, ``/audit``, ``/stats``, ``/ban``, ``/unban``.

A thin door over the services the CLI uses (``list_admin.change_setting``, ``audit.entries``,
``list_admin.stats``, ``bans.add``/``bans.remove``): no rule lives here. Like the queue
commands (``bot.cogs.moderation``), each carries ``default_member_permissions`` as a hint and is
checked again on every call against ``[discord] moderator_role``; a non-moderator is refused
and nothing changes. Every answer is ephemeral and fits Discord's 2000 characters.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, moderator_lists, refused
from bot.cogs.moderation import LIMIT
from bot.context import BotContext
from listserv import audit, bans, list_admin, lists
from listserv.models import AuditEntry, utcnow

AUDIT_DEFAULT = 10
AUDIT_MAX = 50


def audit_text(rows: list[AuditEntry], where: str, limit: int = LIMIT) -> str:
    """The entries oldest first; when too long, the oldest are left out (the newest matter)."""
    if not rows:
        return f"No audit entries for {where}."
    lines = [f"`{e.at:%Y-%m-%d %H:%M}` {e.actor} · {e.action} · {e.target}"
             + (f" · {e.detail}" if e.detail else "") for e in rows]
    while len(lines) > 1 and sum(len(x) + 1 for x in lines) + 40 > limit:
        lines.pop(0)
    left_out = len(rows) - len(lines)
    head = f"… {left_out} older left out\n" if left_out else ""
    return (head + "\n".join(lines))[:limit]


def stats_text(rows: list[list_admin.ListStats]) -> str:
    if not rows:
        return "No lists are bridged."
    return "\n".join(f"**{r.name}** · {r.members} members · {r.posts_week} posts this week · "
                     f"{r.held} held" for r in rows)


class Admin(commands.Cog):
    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    async def _answer(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="emergency",
                          description="Hold every post of a list for a moderator (incidents)")
    @app_commands.describe(list="The list", state="on: hold every post; off: back to normal")
    async def emergency(self, interaction: discord.Interaction, list: str,
                        state: Literal["on", "off"]) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._emergency, list, state, actor_for(interaction.user))
        await self._answer(interaction, text)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="audit", description="The newest audit entries: who did what")
    @app_commands.describe(list="This list's entries (default: the site-wide ones)",
                           n=f"How many (default {AUDIT_DEFAULT}, at most {AUDIT_MAX})")
    async def audit(self, interaction: discord.Interaction, list: str | None = None,
                    n: int = AUDIT_DEFAULT) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._audit, list, max(1, min(n, AUDIT_MAX)))
        await self._answer(interaction, text)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="stats", description="Members, posts this week and held posts")
    @app_commands.describe(list="Only this list (default: the bridged lists)")
    async def stats(self, interaction: discord.Interaction, list: str | None = None) -> None:
        names = await moderator_lists(self.ctx, interaction, list)
        if names is None:
            return
        text = await asyncio.to_thread(self._stats, names)
        await self._answer(interaction, text)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="ban", description="Ban an address or pattern from every list")
    @app_commands.describe(address="An address, a glob like *@spam.example, or a ^regex",
                           duration="12h, 30d, 2w or a date (YYYY-MM-DD); default: never")
    async def ban(self, interaction: discord.Interaction, address: str,
                  duration: str = "") -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._ban, address, duration, actor_for(interaction.user))
        await self._answer(interaction, text)

    @app_commands.default_permissions(manage_messages=True)
    @app_commands.command(name="unban", description="Lift a ban")
    @app_commands.describe(id="The ban's number (/ban answers it; 'commonroom bans list')")
    async def unban(self, interaction: discord.Interaction, id: int) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._unban, id, actor_for(interaction.user))
        await self._answer(interaction, text)

    def _emergency(self, name: str, state: str, actor: str) -> str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            problem = list_admin.change_setting(s, ml, "emergency", state, actor=actor)
        return problem or f"Emergency mode is {state} for {name}."

    def _audit(self, name: str | None, n: int) -> str:
        with self.ctx.store.read_session() as s:
            list_id = None
            if name:
                ml = lists.find(s, name)
                if ml is None:
                    return f"There is no list called {name!r}."
                list_id = ml.id
            rows = audit.entries(s, list_id, limit=n)
            return audit_text(rows, name or "the site")

    def _stats(self, names: list[str]) -> str:
        rows: list[list_admin.ListStats] = []
        now = utcnow()
        with self.ctx.store.read_session() as s:
            for name in names:
                ml = lists.find(s, name)
                if ml is None:
                    return f"There is no list called {name!r}."
                rows.append(list_admin.stats(s, ml, now))
        return stats_text(rows)

    def _ban(self, address: str, duration: str, actor: str) -> str:
        try:
            expires_at = bans.parse_expiry(duration, utcnow())
            with self.ctx.store.session() as s:
                ban = bans.add(s, None, address, expires_at=expires_at, actor=actor)
                ban_id, stored = ban.id, ban.pattern
        except bans.BanProblem as e:
            return str(e)
        until = f" until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        return f"Ban {ban_id}: {stored} is banned from every list{until}."

    def _unban(self, ban_id: int, actor: str) -> str:
        with self.ctx.store.session() as s:
            ban = bans.remove(s, ban_id, actor=actor)
            if ban is None:
                return f"There is no ban number {ban_id}."
            pattern = ban.pattern
        return f"Lifted ban {ban_id} ({pattern})."
