"""What the relay worker (``bot/relay.py``) writes for an event (``listserv.discord_events``):
the card and the Discord scheduled event, and their updates; a competition's card with Enter,
and its closing; and private messages.

Invariants:
- An announcement is two parts, each recorded as soon as Discord has it: the card (Attend /
  Leave) in the row's channel, then the scheduled event (its id kept on the event), so a retry
  or restart goes on after what was written and nothing is announced twice.
- A scheduled event is made only where the bot has Manage Events (or Create Events) in the
  guild; without it, or when Discord refuses it (403), the card alone announces the event.
- A change or cancellation edits what the announcement wrote: edits are safe to repeat, and a
  scheduled event or card deleted in Discord meanwhile is passed over.
- A change asks Discord only for what it allows (``scheduled_changes``): a scheduled event that
  has started (active) keeps its start time, which Discord refuses to move, and gets the rest;
  one that has ended or was cancelled is left alone. Cancelling a started event ends it (Discord
  allows active -> completed only).
- An event or competition gone from the store, or cancelled (drawn) before it was announced,
  writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from bot import competition_card
from bot.event_card import card_view
from listserv import discord_events, discord_relay
from listserv.discord_events import CompetitionPlan, EventPlan
from listserv.discord_relay import RelayJob
from listserv.discord_render import split_message

if TYPE_CHECKING:
    from bot.relay import RelayWorker

log = logging.getLogger("commonroom.bot.relay")
NO_PINGS = discord.AllowedMentions.none()


def may_schedule(perms: discord.Permissions, starts_at: datetime, now: datetime) -> bool:
    """Whether to make a scheduled event: Discord lets the bot (Manage or Create Events), and
    the event has not started (Discord refuses a start in the past; the bot may have been
    down)."""
    allowed = perms.administrator or perms.manage_events or perms.create_events
    return allowed and starts_at > now


def scheduled_changes(status: discord.EventStatus, plan: EventPlan,
                      discord_start: datetime) -> dict[str, Any] | None:
    """The fields of a change Discord accepts for a scheduled event in ``status`` that starts at
    ``discord_start``; None when it accepts none (it has ended or was cancelled)."""
    if status not in (discord.EventStatus.scheduled, discord.EventStatus.active):
        return None
    fields: dict[str, Any] = {
        "name": plan.title[:100], "location": (plan.location or "see the announcement")[:100],
        "description": f"Event {plan.event_id}: {plan.description}"[:1000]}
    if status is discord.EventStatus.scheduled:
        fields |= {"start_time": plan.starts_at, "end_time": plan.ends_at}
    elif plan.ends_at > discord_start:  # started: the start stays, an end must come after it
        fields["end_time"] = plan.ends_at
    return fields


async def write(worker: RelayWorker, job: RelayJob) -> None:
    if job.kind == discord_events.DM:
        await _dm(worker, job)
        return
    if job.kind in discord_events.COMP_KINDS:
        await _competition(worker, job)
        return
    assert job.event_id is not None
    plan = await asyncio.to_thread(_plan, worker, job.event_id)
    extra = {"relay": job.id, "event": job.event_id}
    if plan is None:
        log.warning("event %s is gone: nothing to write in Discord", job.event_id, extra=extra)
    elif job.kind == discord_events.ANNOUNCE:
        if not plan.cancelled:
            await _announce(worker, job, plan)
    else:
        await _follow(worker, job, plan)


def _plan(worker: RelayWorker, event_id: int) -> EventPlan | None:
    with worker.ctx.store.read_session() as s:
        return discord_events.event_plan(s, event_id)


def _competition_plan(worker: RelayWorker, competition_id: int) -> CompetitionPlan | None:
    with worker.ctx.store.read_session() as s:
        return discord_events.competition_plan(s, competition_id)


async def _competition(worker: RelayWorker, job: RelayJob) -> None:
    assert job.competition_id is not None
    plan = await asyncio.to_thread(_competition_plan, worker, job.competition_id)
    if plan is None:
        log.warning("competition %s is gone: nothing to write in Discord", job.competition_id,
                    extra={"relay": job.id, "competition": job.competition_id})
        return
    channel = worker.client.get_partial_messageable(int(job.channel_id))
    if job.kind == discord_events.COMP_CARD:
        if plan.open and job.parts_sent < 1:
            sent = await worker._timed(channel.send(
                plan.card, view=competition_card.card_view(plan.competition_id),
                allowed_mentions=NO_PINGS))
            await worker._store(discord_relay.part_sent, job.id, str(sent.id))
        return
    if plan.card_message_id:  # closed: the card says so, and Enter goes
        try:
            await worker._timed(channel.get_partial_message(int(plan.card_message_id)).edit(
                content=plan.card, view=None))
        except discord.NotFound:
            log.warning("the card of competition %s is gone from Discord", plan.competition_id,
                        extra={"competition": plan.competition_id, "relay": job.id})


async def _dm(worker: RelayWorker, job: RelayJob) -> None:
    dm = await worker._timed(worker.client.create_dm(discord.Object(int(job.channel_id))))
    for part in split_message(job.content)[job.parts_sent:]:
        sent = await worker._timed(dm.send(part, allowed_mentions=NO_PINGS))
        await worker._store(discord_relay.part_sent, job.id, str(sent.id))


async def _announce(worker: RelayWorker, job: RelayJob, plan: EventPlan) -> None:
    if job.parts_sent < 1:
        channel = worker.client.get_partial_messageable(int(job.channel_id))
        sent = await worker._timed(channel.send(plan.card, view=card_view(plan.event_id),
                                                allowed_mentions=NO_PINGS))
        await worker._store(discord_relay.part_sent, job.id, str(sent.id))
    if job.parts_sent < 2:
        made = await _scheduled_event(worker, plan)
        await worker._store(discord_events.record_scheduled_event, job.id, plan.event_id, made)


def _guild(worker: RelayWorker) -> discord.Guild | None:
    return worker.client.get_guild(int(worker.ctx.cfg.discord.guild_id or 0))


async def _scheduled_event(worker: RelayWorker, plan: EventPlan) -> str:
    """The scheduled event's id, or "" when the bot may not make one."""
    guild = _guild(worker)
    if guild is None or not may_schedule(guild.me.guild_permissions, plan.starts_at,
                                         discord.utils.utcnow()):
        return ""
    try:
        made = await worker._timed(guild.create_scheduled_event(
            name=plan.title[:100], start_time=plan.starts_at, end_time=plan.ends_at,
            entity_type=discord.EntityType.external, privacy_level=discord.PrivacyLevel.guild_only,
            location=(plan.location or "see the announcement")[:100],
            description=f"Event {plan.event_id}: {plan.description}"[:1000],
            reason=f"commonroom event {plan.event_id}"))
    except discord.Forbidden as e:
        log.warning("no Discord scheduled event for event %s: %s", plan.event_id, e,
                    extra={"event": plan.event_id})
        return ""
    return str(made.id)


async def _follow(worker: RelayWorker, job: RelayJob, plan: EventPlan) -> None:
    """Bring the scheduled event and the card in line with the event as it is now."""
    guild = _guild(worker)
    if plan.discord_event_id and guild is not None:
        try:
            scheduled = await worker._timed(guild.fetch_scheduled_event(int(plan.discord_event_id)))
            if not plan.cancelled:
                await _change_scheduled(worker, job, plan, scheduled)
            elif scheduled.status is discord.EventStatus.scheduled:
                await worker._timed(scheduled.cancel(
                    reason=f"commonroom event {plan.event_id} cancelled"))
            elif scheduled.status is discord.EventStatus.active:  # it cannot be cancelled now
                await worker._timed(scheduled.end(
                    reason=f"commonroom event {plan.event_id} cancelled while under way"))
        except discord.NotFound:
            log.warning("the scheduled event of event %s is gone from Discord", plan.event_id,
                        extra={"event": plan.event_id, "relay": job.id})
    if plan.card_message_id:
        card = worker.client.get_partial_messageable(int(job.channel_id)).get_partial_message(
            int(plan.card_message_id))
        view = None if plan.cancelled else card_view(plan.event_id)
        try:
            await worker._timed(card.edit(content=plan.card, view=view))
        except discord.NotFound:
            log.warning("the card of event %s is gone from Discord", plan.event_id,
                        extra={"event": plan.event_id, "relay": job.id})


async def _change_scheduled(worker: RelayWorker, job: RelayJob, plan: EventPlan,
                            scheduled: discord.ScheduledEvent) -> None:
    extra = {"event": plan.event_id, "relay": job.id}
    fields = scheduled_changes(scheduled.status, plan, scheduled.start_time)
    if fields is None:
        log.warning("the scheduled event of event %s is %s in Discord: left as it is",
                    plan.event_id, scheduled.status.name, extra=extra)
        return
    if "start_time" not in fields and plan.starts_at != scheduled.start_time:
        log.warning("the scheduled event of event %s has started in Discord, which keeps its "
                    "start time (%s); the rest is changed", plan.event_id,
                    scheduled.start_time.isoformat(), extra=extra)
    await worker._timed(scheduled.edit(**fields,
                                       reason=f"commonroom event {plan.event_id} changed"))
