"""``/event add|change|list|cancel|attendees`` (moderators); the event's card and its Attend / Leave
buttons are ``bot/event_card.py``.

A thin door over ``listserv.events``, as ``commonroom events`` is. ``/event add`` creates the
event; the service announces it to the list (and through the bridge into the list's channel
like any post) and queues its Discord side for the relay worker, as for an event made through
any other door: the card in the list's bridged channel (else where the command was used) and
a Discord scheduled event where the bot may make one. ``/event change`` takes only the fields
to change, checked as the web form's (``mod_tools.check_change``), and ``events.change`` tells
those coming by mail and updates the Discord side; ``/event cancel`` tells those coming by
mail and cancels the Discord side the same way. Moderator commands check the role on every
call; answers are ephemeral.
"""

from __future__ import annotations

import asyncio
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import actor_for, moderator_action, moderator_list, refused
from bot.context import BotContext
from bot.relay import wake_relay
from listserv import events, lists, mod_tools
from listserv.event_mail import when_text
from listserv.mod_tools import Tool
from listserv.models import EventState, MailingList, utcnow

# The form's field names as the command's options name them.
DISCORD_NAMES = {"timezone": "tz", "booking": "booking_url"}


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
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        fields = {"title": title, "start": start, "end": end, "tz": tz, "where": where,
                  "booking_url": booking_url, "capacity": capacity, "description": description}
        text, made = await asyncio.to_thread(self._add, name, fields, actor_for(interaction.user),
                                             str(interaction.channel_id or ""))
        await interaction.response.send_message(text, ephemeral=True)
        if made:
            self.ctx.mail_queued()
            wake_relay(interaction.client)

    def _add(self, name: str, f: dict[str, Any], actor: str, here: str) -> tuple[str, bool]:
        with self.ctx.store.session() as s:
            ml = lists.find(s, name)
            if ml is None:
                return f"There is no list called {name!r}.", False
            zone = f["tz"] or ml.timezone
            if (problem := events.zone_problem(zone)) is not None:
                return f"{problem}.", False
            start, end = events.parse_time(f["start"], zone), events.parse_time(f["end"], zone)
            if start is None or end is None:
                return ("Write the times as 2026-09-03T09:30 (in the list's time zone, or "
                        "`tz:`).", False)
            draft = events.Draft(title=f["title"].strip(), starts_at=start, ends_at=end,
                                 timezone=zone, location=f["where"].strip(),
                                 booking_url=f["booking_url"].strip(), capacity=f["capacity"],
                                 description=f["description"])
            now = utcnow()
            if (problem := events.draft_problem(draft, now)) is not None:
                return f"Not announced: {problem}.", False
            event = events.create(s, self.ctx.cfg, ml, draft, actor=actor, now=now,
                                  discord_channel=here)
            s.flush()
            return f"Event {event.id} announced to {name}.", True

    @event.command(name="change", description="Change an event; those coming are told "
                   "(moderators)")
    @app_commands.describe(id="The event's number (/event list)", title="A new title",
                           start="A new start: 2026-09-03T09:30", end="A new end",
                           tz="A new time zone (the times are read in it)",
                           where="A new place or online link", booking_url="A new booking link",
                           capacity="How many can come now", description="A new description")
    async def change(self, interaction: discord.Interaction, id: int, title: str | None = None,
                     start: str | None = None, end: str | None = None, tz: str | None = None,
                     where: str | None = None, booking_url: str | None = None,
                     capacity: app_commands.Range[int, 1] | None = None,
                     description: str | None = None) -> None:
        if await refused(self.ctx, interaction):
            return
        given = {"title": title, "start": start, "end": end, "timezone": tz, "where": where,
                 "booking": booking_url, "capacity": None if capacity is None else str(capacity),
                 "description": description}
        typed = {k: v for k, v in given.items() if v is not None}
        text, changed = await asyncio.to_thread(self._change, id, typed,
                                                actor_for(interaction.user))
        await interaction.response.send_message(text, ephemeral=True)
        if changed:
            self.ctx.mail_queued()
            wake_relay(interaction.client)

    def _change(self, event_id: int, typed: dict[str, str], actor: str) -> tuple[str, bool]:
        if not typed:
            return ("Say what to change: title, start, end, tz, where, booking_url, capacity or "
                    "description."), False
        with self.ctx.store.session() as s:
            event = events.find(s, event_id)
            ml = s.get(MailingList, event.list_id) if event else None
            if event is None or ml is None or \
                    mod_tools.open_item(s, ml, Tool.EVENT, event_id) is None:
                return f"There is no event {event_id} to change.", False
            now = utcnow()
            checked = mod_tools.check_change(s, ml, event, typed, moderator=actor, now=now)
            if not checked.ok:
                return "Not changed: " + "; ".join(
                    f"{DISCORD_NAMES.get(k, k)}: {p}" for k, p in checked.errors.items()) + ".", \
                    False
            done = mod_tools.change(s, self.ctx.cfg, ml, event, checked.values, actor=actor,
                                    now=now)
        return f"{done.message[0].upper()}{done.message[1:]}; those coming are told.", True

    @event.command(name="list", description="A list's coming events (moderators)")
    @app_commands.describe(list="The list (default: the bridged one)")
    async def list_(self, interaction: discord.Interaction, list: str | None = None) -> None:
        name = await moderator_list(self.ctx, interaction, list)
        if name is None:
            return
        text = await asyncio.to_thread(self._list, name)
        await interaction.response.send_message(text, ephemeral=True)

    def _list(self, name: str) -> str:
        with self.ctx.store.read_session() as s:
            ml = lists.find(s, name)
            if ml is None or ml.id is None:
                return f"There is no list called {name!r}."
            lines = []
            for event in events.upcoming(s, ml.id, utcnow()):
                taken = events.count_attending(s, event.id or 0)
                places = f"{taken}/{event.capacity}" if event.capacity else f"{taken}"
                lines.append(f"**{event.id}** · {when_text(event)} · {event.title} · "
                             f"{places} coming")
        return "\n".join(lines)[:1900] or f"No events are coming up on {name}."

    @event.command(name="cancel", description="Cancel an event; those coming are told "
                   "(moderators)")
    @app_commands.describe(id="The event's number (/event list)")
    async def cancel(self, interaction: discord.Interaction, id: int) -> None:
        await moderator_action(self.ctx, interaction, self._cancel, id)

    def _cancel(self, event_id: int, actor: str) -> str:
        with self.ctx.store.session() as s:
            event = events.find(s, event_id)
            if event is None:
                return f"There is no event {event_id}."
            if event.state != EventState.SCHEDULED.value:
                return f"Event {event_id} is already cancelled."
            told = events.cancel(s, self.ctx.cfg, event, actor=actor, now=utcnow())
            return f"Event {event_id} ({event.title}) is cancelled; {told} told."

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
