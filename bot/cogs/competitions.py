"""``/competition start|entrants|draw|cancel|reserve`` (moderators), ``/competition verify``
(anyone); the card's Enter button is ``bot/competition_card.py``.

A thin door over ``listserv.competitions``, the service ``commonroom competitions`` calls, with
the same names. Moderator commands check the role on every call (``bot.checks``); the group is
not hidden by ``default_member_permissions``, since ``verify`` is for everyone. Answers are
ephemeral. What the service queues for Discord (the card with Enter, its closing at the draw,
the winner's DM) the relay worker writes, as for a competition started through any door.
"""

from __future__ import annotations

import asyncio
import json

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, moderator_action, moderator_list, refused
from bot.context import BotContext
from bot.relay import wake_relay
from listserv import competitions, lists, when
from listserv.models import Competition, CompetitionState, utcnow


class Competitions(commands.Cog):
    competition = app_commands.Group(
        name="competition", description="Prize draws among members (verify: anyone)")

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
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        text = await asyncio.to_thread(self._start, name, prize, closes, reserves, exclude_org,
                                       actor_for(interaction.user),
                                       str(interaction.channel_id or ""))
        await interaction.response.send_message(text, ephemeral=True)
        self.ctx.mail_queued()
        wake_relay(interaction.client)  # the card with Enter

    def _start(self, name: str, prize: str, closes: str, reserves: int, exclude_org: str,
               actor: str, here: str) -> str:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}."
            now = utcnow()
            try:
                closes_at = when.parse(closes, ml.timezone, now)
                comp = competitions.start(s, self.ctx.cfg, ml, prize=prize, closes_at=closes_at,
                                          now=now, reserves=reserves, exclude_org=exclude_org,
                                          actor=actor, discord_channel=here)
            except ValueError as e:
                return f"Not started: {e}."
            return (f"Competition {comp.id} started on {name}; it closes "
                    f"<t:{int(closes_at.timestamp())}:F>.")

    @competition.command(name="entrants", description="Who has entered, in order (moderators)")
    @app_commands.describe(id="The competition's number")
    async def entrants(self, interaction: discord.Interaction, id: int) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._entrants, id)
        await interaction.response.send_message(text[:1900], ephemeral=True)

    def _entrants(self, competition_id: int) -> str:
        with self.ctx.store.read_session() as s:
            comp = s.get(Competition, competition_id)
            if comp is None:
                return f"There is no competition {competition_id}."
            rows = competitions.entries(s, competition_id)
            return "\n".join([
                f"Competition {comp.id} ({comp.prize}): {comp.state}, {len(rows)} entrants",
                *[f"{i}. {e.address} · <t:{int(e.entered_at.timestamp())}:f>"
                  for i, e in enumerate(rows, 1)]])

    @competition.command(name="draw", description="Close a competition now and draw it "
                         "(moderators)")
    @app_commands.describe(id="The competition's number")
    async def draw(self, interaction: discord.Interaction, id: int) -> None:
        await moderator_action(self.ctx, interaction, self._draw, id)

    def _draw(self, competition_id: int, actor: str) -> str:
        with self.ctx.store.session() as s:
            comp = s.get(Competition, competition_id)
            if comp is None:
                return f"There is no competition {competition_id}."
            state = comp.state
            drawn = competitions.draw(s, self.ctx.cfg, competition_id, now=utcnow(), actor=actor)
        if drawn is None:
            return f"Competition {competition_id} is {state}: it cannot be drawn again."
        return (f"Drew competition {competition_id} among {drawn.entrants} entrants: "
                f"winner {drawn.winner or 'none'}"
                + (f"; reserves {', '.join(drawn.reserves)}" if drawn.reserves else "") + ".")

    @competition.command(name="cancel", description="Call off an open competition: no draw "
                         "(moderators)")
    @app_commands.describe(id="The competition's number")
    async def cancel(self, interaction: discord.Interaction, id: int) -> None:
        await moderator_action(self.ctx, interaction, self._cancel, id)  # the card's closing

    def _cancel(self, competition_id: int, actor: str) -> str:
        with self.ctx.store.session() as s:
            comp = s.get(Competition, competition_id)
            if comp is None:
                return f"There is no competition {competition_id}."
            state = comp.state
            if not competitions.cancel(s, self.ctx.cfg, competition_id, actor=actor):
                return (f"Competition {competition_id} is {state}: only an open competition "
                        "can be called off.")
        return f"Cancelled competition {competition_id}: there will be no draw; the list is told."

    @competition.command(name="verify", description="Check a competition's draw (anyone)")
    @app_commands.describe(id="The competition's number")
    async def verify(self, interaction: discord.Interaction, id: int) -> None:
        text = await asyncio.to_thread(self._verify, id)
        await interaction.response.send_message(text[:1900], ephemeral=True)

    def _verify(self, competition_id: int) -> str:
        with self.ctx.store.read_session() as s:
            comp = s.get(Competition, competition_id)
            if comp is None:
                return f"There is no competition {competition_id}."
            head = f"**Competition {comp.id} ({comp.prize})"
            if comp.state != CompetitionState.DRAWN.value:  # the seed stays secret till then
                return (f"{head} is {comp.state}: not drawn yet.**\nCommitment (SHA-256 of the "
                        f"secret seed): `{comp.commitment}`")
            result = competitions.verify(s, comp)
            return "\n".join([
                f"{head} {'verifies' if result.ok else 'does NOT verify'}.**",
                f"Commitment: `{comp.commitment}`", f"Seed: `{comp.seed}`",
                verdict_line(comp),
                *[f"{'ok' if ok else 'FAIL'} · {what}" for ok, what in result.checks]])

    @competition.command(name="reserve", description="The winner did not claim: the next "
                         "reserve wins (moderators)")
    @app_commands.describe(id="The competition's number")
    async def reserve(self, interaction: discord.Interaction, id: int) -> None:
        await moderator_action(self.ctx, interaction, self._reserve, id)

    def _reserve(self, competition_id: int, actor: str) -> str:
        with self.ctx.store.session() as s:
            comp = s.get(Competition, competition_id)
            if comp is None:
                return f"There is no competition {competition_id}."
            if comp.state != CompetitionState.DRAWN.value:
                return f"Competition {competition_id} is {comp.state}: draw it first."
            address = competitions.draw_reserve(s, self.ctx.cfg, comp, actor=actor)
            if address is None:
                return f"Competition {competition_id} has no reserve left."
            return f"Reserve {comp.current} wins: {address}."


def verdict_line(comp: Competition) -> str:
    """"2 entrants; winner: entrant 2; reserves: entrant 1", as published."""
    published: list[str] = json.loads(comp.entrants or "[]")
    picks: list[int] = json.loads(comp.picks or "[]")
    if not picks:
        return f"{len(published)} entrants; no winner."
    line = f"{len(published)} entrants; winner: entrant {picks[0] + 1}"
    if picks[1:]:
        line += "; reserves: " + ", ".join(f"entrant {p + 1}" for p in picks[1:])
    if comp.current:
        line += f" (reserve {comp.current} has the prize now)"
    return line
