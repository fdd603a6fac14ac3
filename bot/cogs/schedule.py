"""``/schedule add|list|cancel`` (moderators): posts sent to the list later.

A thin door over ``listserv.scheduled_posts``, the service ``commonroom schedule`` calls.
Commands check the moderator role on every call (``bot.checks``); answers are ephemeral.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, moderator_list, refused
from bot.context import BotContext
from listserv import discord_links, lists, scheduled_posts, when
from listserv.models import utcnow


class Schedule(commands.Cog):
    schedule = app_commands.Group(
        name="schedule", description="Posts sent to the list later (moderators)",
        default_permissions=discord.Permissions(manage_messages=True))

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @schedule.command(name="add", description="Schedule a post, once or repeating")
    @app_commands.describe(at="When, e.g. 'next Wednesday 09:00' (list's time zone)",
                           subject="The post's subject", body="The post's text",
                           every="Repeat, e.g. 'every second Wednesday at 09:00'",
                           from_email="On behalf of this member (default: you, linked)",
                           list="The list (default: the bridged one)")
    async def schedule_add(self, interaction: discord.Interaction, at: str, subject: str,
                           body: str, every: str = "", from_email: str = "",
                           list: str | None = None) -> None:
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        text = await asyncio.to_thread(self._schedule, name, str(interaction.user.id), at,
                                       subject, body, every, from_email,
                                       actor_for(interaction.user))
        await interaction.response.send_message(text, ephemeral=True)

    def _schedule(self, name: str, user_id: str, at: str, subject: str, body: str, every: str,
                  from_email: str, actor: str) -> str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            sender = from_email or discord_links.linked_address(s, user_id, ml)
            if not sender:
                return "Say whom it is from with `from_email:`, or link your account (/link)."
            now = utcnow()
            try:
                row = scheduled_posts.schedule(s, ml, from_address=sender, subject=subject,
                                               body=body, at=when.parse(at, ml.timezone, now),
                                               every=every, now=now, actor=actor)
            except ValueError as e:
                return f"Not scheduled: {e}."
            return (f"Scheduled post {row.id} from {sender}: <t:{int(row.next_at.timestamp())}:F>"
                    f"{', ' + row.rule if row.rule else ''}.")

    @schedule.command(name="list", description="The list's scheduled posts")
    @app_commands.describe(list="The list (default: the bridged one)")
    async def schedule_list(self, interaction: discord.Interaction,
                            list: str | None = None) -> None:
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        text = await asyncio.to_thread(self._list, name)
        await interaction.response.send_message(text[:1900], ephemeral=True)

    def _list(self, name: str) -> str:
        with self.ctx.store.read_session() as s:
            ml = lists.find(s, name)
            if ml is None or ml.id is None:
                return f"There is no list called {name!r}."
            rows = scheduled_posts.upcoming(s, ml.id)
            return "\n".join(f"**{r.id}** · <t:{int(r.next_at.timestamp())}:F> · "
                             f"{r.rule or 'once'} · {r.from_address} · {r.subject}"
                             for r in rows) or f"No scheduled posts on {name}."

    @schedule.command(name="cancel", description="Cancel a scheduled post")
    @app_commands.describe(id="The scheduled post's number (/schedule list)")
    async def schedule_cancel(self, interaction: discord.Interaction, id: int) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._cancel, id, actor_for(interaction.user))
        await interaction.response.send_message(text, ephemeral=True)

    def _cancel(self, scheduled_id: int, actor: str) -> str:
        with self.ctx.store.session() as s:
            row = scheduled_posts.cancel(s, scheduled_id, actor=actor)
        return (f"Cancelled scheduled post {scheduled_id}." if row else
                f"There is no active scheduled post {scheduled_id}.")
