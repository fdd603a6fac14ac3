"""``/competition start`` and the Enter button; ``/schedule add|list|cancel`` (moderators).

A thin door over ``listserv.competitions`` and ``listserv.scheduled_posts``, the services the
CLI calls. Moderator commands check the role on every call (``bot.checks.refused``). The Enter
button's custom_id carries the competition (``cr:comp:enter:12``) and is a ``DynamicItem``, so a
press is understood after a restart; it enters the presser's linked membership address, by the
same rules as a reply in the thread. Answers to the presser and moderator are ephemeral.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, chosen_list, context_of, refused, which_list
from bot.context import BotContext
from listserv import competitions, discord_links, lists, scheduled_posts, when
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


class Competitions(commands.Cog):
    competition = app_commands.Group(
        name="competition", description="Prize draws among members (moderators)",
        default_permissions=discord.Permissions(manage_messages=True))
    schedule = app_commands.Group(
        name="schedule", description="Posts sent to the list later (moderators)",
        default_permissions=discord.Permissions(manage_messages=True))

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @competition.command(name="start", description="Start a competition and announce it")
    @app_commands.describe(prize="What the winner gets",
                           closes="When it closes, e.g. 'next Friday 12:00' (list's time zone)",
                           reserves="Reserves drawn after the winner",
                           exclude_org="Vendor staff of this organisation cannot enter",
                           list="The list (default: the bridged one)")
    async def start(self, interaction: discord.Interaction, prize: str, closes: str,
                    reserves: app_commands.Range[int, 0, 20] = 0, exclude_org: str = "",
                    list: str | None = None) -> None:
        if await refused(self.ctx, interaction):
            return
        name = chosen_list(self.ctx.cfg.bridges, list)
        if name is None:
            await interaction.response.send_message(which_list(self.ctx.cfg.bridges),
                                                    ephemeral=True)
            return
        found = await asyncio.to_thread(self._start, name, prize, closes, reserves, exclude_org,
                                        actor_for(interaction.user))
        if isinstance(found, str):
            await interaction.response.send_message(found, ephemeral=True)
            return
        self.ctx.mail_queued()
        cid, closes_text = found
        await interaction.response.send_message(
            f"Competition {cid} started on {name}; it closes {closes_text}.", ephemeral=True)
        view = discord.ui.View(timeout=None)
        view.add_item(EnterButton(cid))
        await interaction.followup.send(
            f"**Competition: win {prize}!** Closes {closes_text}. Press Enter, or reply in the "
            "competition's thread. Members only, one entry each.", view=view)

    def _start(self, name: str, prize: str, closes: str, reserves: int, exclude_org: str,
               actor: str) -> tuple[int, str] | str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            now = utcnow()
            try:
                closes_at = when.parse(closes, ml.timezone, now)
                comp = competitions.start(s, self.ctx.cfg, ml, prize=prize, closes_at=closes_at,
                                          now=now, reserves=reserves, exclude_org=exclude_org,
                                          actor=actor)
            except ValueError as e:
                return f"Not started: {e}."
            assert comp.id is not None
            return comp.id, f"<t:{int(closes_at.timestamp())}:F>"

    @schedule.command(name="add", description="Schedule a post, once or repeating")
    @app_commands.describe(at="When, e.g. 'next Wednesday 09:00' (list's time zone)",
                           subject="The post's subject", body="The post's text",
                           every="Repeat, e.g. 'every second Wednesday at 09:00'",
                           from_email="On behalf of this member (default: you, linked)",
                           list="The list (default: the bridged one)")
    async def schedule_add(self, interaction: discord.Interaction, at: str, subject: str,
                           body: str, every: str = "", from_email: str = "",
                           list: str | None = None) -> None:
        if await refused(self.ctx, interaction):
            return
        name = chosen_list(self.ctx.cfg.bridges, list)
        text = which_list(self.ctx.cfg.bridges) if name is None else await asyncio.to_thread(
            self._schedule, name, str(interaction.user.id), at, subject, body, every,
            from_email, actor_for(interaction.user))
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
        if await refused(self.ctx, interaction):
            return
        name = chosen_list(self.ctx.cfg.bridges, list)
        text = which_list(self.ctx.cfg.bridges) if name is None else await asyncio.to_thread(
            self._list, name)
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
