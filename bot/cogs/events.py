"""``/event add`` and ``/event attendees`` (moderators), and the Attend / Leave buttons on the
event's card in Discord.

A thin door over ``listserv.events``, as ``commonroom events`` is: ``/event add`` creates and
announces the event (the announcement goes to the list, and through the bridge into the
list's channel like any post), then the bot posts a card with Attend and Leave buttons in the
list's bridged channel (else where the command was used). A press acts for the member the
Discord account is linked to (``/link``: the account proved it reads that address), via
"discord". Buttons are a ``DynamicItem`` (``cr:event:attend:12``) so a press works on any card,
also after a restart. Moderator commands check the role on every call; answers are ephemeral.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, chosen_list, context_of, refused, which_list
from bot.context import BotContext
from listserv import discord_links, events, lists
from listserv.event_mail import when_text
from listserv.models import Event, MailingList, utcnow

log = logging.getLogger("commonroom.bot")
TEMPLATE = r"cr:event:(?P<action>attend|leave):(?P<id>[0-9]+)"


def card_text(event: Event) -> str:
    where = f"\n{event.location}" if event.location else ""
    places = f"\n{event.capacity} places (then a waiting list)" if event.capacity else ""
    return f"**Event {event.id}: {event.title}**\n{when_text(event)}{where}{places}"


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


async def scheduled_event(interaction: discord.Interaction, event: Event) -> None:
    """Also a Discord scheduled event, where the bot may create one (else the card stands
    alone); a refusal or failure is logged, never shown as the command failing."""
    perms, guild = interaction.app_permissions, interaction.guild
    if guild is None or not (perms.administrator or perms.manage_events or perms.create_events):
        return
    try:
        await guild.create_scheduled_event(
            name=event.title[:100], start_time=event.starts_at, end_time=event.ends_at,
            entity_type=discord.EntityType.external, privacy_level=discord.PrivacyLevel.guild_only,
            location=(event.location or "see the announcement")[:100],
            description=f"Event {event.id}: {event.description}"[:1000],
            reason=f"commonroom event {event.id}")
    except discord.HTTPException as e:
        log.warning("no Discord scheduled event for event %s: %s", event.id, e,
                    extra={"event": event.id})


class Events(commands.Cog):
    event = app_commands.Group(name="event", description="Events: announce one, see who is "
                               "coming (moderators)")

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    @event.command(name="add", description="Announce an event to the list (moderators)")
    @app_commands.describe(title="What it is called", start="When it starts: 2026-09-03T09:30",
                           end="When it ends: 2026-09-03T12:30",
                           tz="Time zone of the times (default: the list's)",
                           where="A place or an online link", booking_url="Where to book",
                           capacity="How many can come (then a waiting list)",
                           description="A few lines about it",
                           list="The list (default: the bridged one)")
    async def add(self, interaction: discord.Interaction, title: str, start: str, end: str,
                  tz: str | None = None, where: str = "", booking_url: str = "",
                  capacity: app_commands.Range[int, 1] | None = None, description: str = "",
                  list: str | None = None) -> None:
        if await refused(self.ctx, interaction):
            return
        name = chosen_list(self.ctx.cfg.bridges, list)
        if name is None:
            await interaction.response.send_message(which_list(self.ctx.cfg.bridges),
                                                    ephemeral=True)
            return
        fields = {"title": title, "start": start, "end": end, "tz": tz, "where": where,
                  "booking_url": booking_url, "capacity": capacity, "description": description}
        text, event = await asyncio.to_thread(self._add, name, fields,
                                              actor_for(interaction.user))
        await interaction.response.send_message(text, ephemeral=True)
        if event is not None:
            self.ctx.mail_queued()
            channel_id = self.ctx.cfg.bridges.get(name) or str(interaction.channel_id)
            channel = interaction.client.get_partial_messageable(int(channel_id))
            await channel.send(card_text(event), view=card_view(event.id or 0))
            await scheduled_event(interaction, event)

    def _add(self, name: str, f: dict[str, Any], actor: str) -> tuple[str, Event | None]:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}.", None
            zone = f["tz"] or ml.timezone
            if (problem := events.zone_problem(zone)) is not None:
                return f"{problem}.", None
            start, end = events.parse_time(f["start"], zone), events.parse_time(f["end"], zone)
            if start is None or end is None:
                return ("Write the times as 2026-09-03T09:30 (in the list's time zone, or "
                        "`tz:`).", None)
            draft = events.Draft(title=f["title"].strip(), starts_at=start, ends_at=end,
                                 timezone=zone, location=f["where"].strip(),
                                 booking_url=f["booking_url"].strip(), capacity=f["capacity"],
                                 description=f["description"])
            now = utcnow()
            if (problem := events.draft_problem(draft, now)) is not None:
                return f"Not announced: {problem}.", None
            event = events.create(s, self.ctx.cfg, ml, draft, actor=actor, now=now)
            s.flush()
            s.expunge(event)
        return f"Event {event.id} announced to {name}.", event

    @event.command(name="attendees", description="Who is coming to an event (moderators)")
    @app_commands.describe(event_id="The event's number")
    async def attendees(self, interaction: discord.Interaction, event_id: int) -> None:
        if await refused(self.ctx, interaction):
            return
        text = await asyncio.to_thread(self._attendees, event_id)
        await interaction.response.send_message(text, ephemeral=True)

    def _attendees(self, event_id: int) -> str:
        with self.ctx.store.read_session() as s:
            event = events.find(s, event_id)
            if event is None:
                return f"There is no event {event_id}."
            lines = [f"{i}. {r.email}{' (waiting)' if r.state == 'waiting' else ''}"
                     for i, r in enumerate(events.attendees(s, event_id), 1)]
            head = f"**Event {event_id}: {event.title}**"
        if not lines:
            return f"{head}\nNobody has said they are coming yet."
        return "\n".join([head, *lines])[:1900]
