"""The relay worker: writes the ``discord_relay`` queue into Discord (email -> Discord).

A task started with the bot. Every ``poll_interval`` seconds (or when woken) it reads the due
rows (``listserv.discord_relay.due``: one query) and writes each: a list post into the
Discord thread of its list thread, opening that thread first if there is none (a forum post
made by the channel's webhook, or a thread on a starter message in a text channel), each part
through the channel's "Commonroom" webhook under the author's name; a channel message into its
channel; an event's card and scheduled event, or a private message (``bot/relay_events.py``).

Invariants:
- Nothing written can ping: every send has ``AllowedMentions.none()``.
- Order and no repeats are the queue's (``listserv.discord_relay``): each part is recorded as
  soon as Discord has it, and a failed row is retried after a backoff before any later row of
  its list goes out.
- Discord unreachable, 429 and 5xx are retried (discord.py first retries a 429 with a ``Via``
  header and 5xx itself); other 4xx (no permission, unknown channel) fail the row for good,
  logged with list and message. A deleted webhook is replaced at once; so is a deleted
  Discord thread (the list thread gets a new one, and the post is written there whole).
- One writer per row even if two workers ever ran on one store (normally the bot, and so the
  worker, runs in one process: bot/leased.py): a row is claimed before it is written
  (``discord_relay.claim``), and skipped when another worker holds it.
- Store access runs in worker threads (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from bot import relay_events
from bot.context import BotContext
from listserv import discord_events, discord_relay
from listserv.backoff import backoff
from listserv.discord_relay import PostPlan, RelayJob
from listserv.discord_render import render_post, split_message

log = logging.getLogger("commonroom.bot.relay")

WEBHOOK_NAME = "Commonroom"
NO_PINGS = discord.AllowedMentions.none()
UNKNOWN_CHANNEL = 10003  # Discord's JSON error codes: a channel or thread that is gone
UNKNOWN_WEBHOOK = 10015  # a webhook that was deleted


@dataclass(frozen=True)
class Timing:
    poll_interval: float = 1.0  # seconds between looks at the queue
    retry_base: float = 5.0  # the first retry's delay; it doubles on each failure
    retry_cap: float = 600.0
    send_timeout: float = 120.0  # per call: discord.py may sleep through a long 429 itself
    stop_grace: float = 10.0  # seconds a stopping bot waits for the row being written


TIMING = Timing()  # what the bot runs with (the tests set shorter ones)


class Refused(Exception):
    """A row that cannot go out, ever (the post is gone, the channel is not a text or forum
    channel)."""


class ThreadGone(Exception):
    """The Discord thread a list thread was mapped to no longer exists."""

    def __init__(self, thread_id: str, error: discord.NotFound) -> None:
        super().__init__(thread_id)
        self.thread_id = thread_id
        self.error = error


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: ``retry_after`` None means for good (``error`` says why)."""

    error: str
    retry_after: float | None = None


def classify(exc: BaseException) -> Outcome:
    """Retry what may work later (Discord unreachable, slow, rate-limiting, failing); not what
    Discord refused (403 no permission, 404 no such channel, 400 bad request)."""
    if isinstance(exc, Refused):
        return Outcome(str(exc))
    if isinstance(exc, discord.RateLimited):
        return Outcome(f"rate limited for {exc.retry_after:.0f}s", exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        what = f"Discord answered {exc.status}: {exc.text or exc.code}"
        if exc.status == 429:
            return Outcome(what, _retry_after(exc))
        if exc.status >= 500:
            return Outcome(what, 0.0)
        if exc.status == 403:
            return Outcome(f"{what} (in the bridged channel the bot needs View Channel, Send "
                           "Messages, Manage Webhooks, Create Public Threads and Send Messages "
                           "in Threads)")
        return Outcome(what)
    if isinstance(exc, (aiohttp.ClientError, OSError, TimeoutError)):
        return Outcome(f"Discord unreachable: {type(exc).__name__}: {exc}", 0.0)
    raise exc  # a bug: let the worker log it with its traceback


def _retry_after(exc: discord.HTTPException) -> float:
    header = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        return float(header) if header else 0.0
    except ValueError:
        return 0.0


def wake_relay(client: discord.Client) -> None:
    """Have the client's relay worker look at the queue now (a cog queued something)."""
    worker = getattr(client, "relay", None)
    if isinstance(worker, RelayWorker):
        worker.wake()


class RelayWorker:
    def __init__(self, client: discord.Client, ctx: BotContext, timing: Timing | None = None
                 ) -> None:
        self.client = client
        self.ctx = ctx
        self.timing = timing or TIMING
        self._hooks: dict[int, discord.Webhook] = {}  # channel id -> our webhook
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.worker_id = f"pid {os.getpid()} #{secrets.token_hex(4)}"  # whose claims are whose

    # --- running -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="discord-relay")

    async def stop(self) -> None:
        """Let the row being written finish (a part cut off mid-call could be written twice),
        for ``stop_grace`` seconds at most, then cancel."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            if not self.client.is_ready():
                raise TimeoutError  # still waiting for the gateway: nothing being written
            await asyncio.wait_for(asyncio.shield(self._task), self.timing.stop_grace)
        except TimeoutError:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        await self.client.wait_until_ready()
        try:  # rows a stopped worker was writing (this process's before a restart, or a
            # process that lost the bot's lease): the parts it recorded are not written again
            cleared = await asyncio.to_thread(self._clear_claims)
            if cleared:
                log.info("Discord relay: took over %d row(s) a stopped worker was writing",
                         cleared)
        except Exception:
            log.exception("the Discord relay could not clear old claims")
        while not self._stopping:
            try:
                while await self.run_once():
                    pass  # something went out: the rows behind it may be due now
            except Exception:
                log.exception("the Discord relay failed; trying again at the next poll")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.timing.poll_interval)
            self._wake.clear()

    async def run_once(self) -> int:
        """Write the rows due now; return how many went out."""
        jobs = await asyncio.to_thread(self._due)
        sent = 0
        for job in jobs:
            if self._stopping:
                break
            sent += await self._attempt(job)
        return sent

    def _due(self) -> list[RelayJob]:
        with self.ctx.store.read_session() as s:
            return discord_relay.due(s)

    def _clear_claims(self) -> int:
        with self.ctx.store.session() as s:
            return discord_relay.clear_claims(s, self.worker_id)

    def _claim(self, relay_id: int) -> RelayJob | None:
        with self.ctx.store.session() as s:
            return discord_relay.claim(s, relay_id, self.worker_id)

    async def _attempt(self, job: RelayJob) -> bool:
        claimed = await asyncio.to_thread(self._claim, job.id)
        if claimed is None:
            return False  # another worker is writing it (or already has)
        try:
            return await self._attempt_claimed(claimed)
        except Exception:  # a bug (classify re-raised it): free the row for the next poll
            await self._store(discord_relay.unclaim, job.id, self.worker_id)
            raise

    async def _attempt_claimed(self, job: RelayJob) -> bool:
        try:
            for again in (True, True, False):
                try:
                    await self._write(job)
                    break
                except discord.NotFound as e:  # our webhook was deleted in Discord
                    if not again or e.code != UNKNOWN_WEBHOOK:
                        raise
                    self._hooks.clear()  # make a new one and go on at once
                except ThreadGone as gone:  # the Discord thread was deleted: open a new one
                    if not again:
                        raise gone.error from None
                    await self._store(discord_relay.forget_thread, job.id, gone.thread_id)
                    log.warning("Discord thread %s is gone; the list thread gets a new one",
                                gone.thread_id, extra={"relay": job.id,
                                                       "message_pk": job.message_pk})
                job = await asyncio.to_thread(self._reload, job.id)
        except Exception as e:  # classify re-raises what is not Discord's or the network's
            outcome = classify(e)
            await asyncio.to_thread(self._failed, job, outcome)
            return False
        await self._store(discord_relay.finish, job.id)
        return True

    def _reload(self, relay_id: int) -> RelayJob:
        with self.ctx.store.read_session() as s:
            job = discord_relay.job(s, relay_id)
        assert job is not None
        return job

    def _failed(self, job: RelayJob, outcome: Outcome) -> None:
        extra = {"relay": job.id, "list_id": job.list_id, "message_pk": job.message_pk,
                 "channel": job.channel_id, "attempts": job.attempts + 1}
        with self.ctx.store.session() as s:
            if outcome.retry_after is None:
                discord_relay.give_up(s, job.id, outcome.error)
                log.error("Discord relay failed for good: %s", outcome.error, extra=extra)
                return
            delay = max(outcome.retry_after, backoff(
                job.attempts + 1, self.timing.retry_base, self.timing.retry_cap))
            discord_relay.retry_later(s, job.id, outcome.error, delay)
        log.warning("Discord relay will retry in %.1fs: %s", delay, outcome.error, extra=extra)

    async def _store(self, fn: Any, *args: Any) -> None:
        def run() -> None:
            with self.ctx.store.session() as s:
                fn(s, *args)
        await asyncio.to_thread(run)

    # --- writing -------------------------------------------------------------------------

    async def _write(self, job: RelayJob) -> None:
        if job.kind == "channel":
            channel = await self._channel(job.channel_id)
            for part in split_message(job.content)[job.parts_sent:]:
                sent = await self._timed(channel.send(part, allowed_mentions=NO_PINGS))
                await self._store(discord_relay.part_sent, job.id, str(sent.id))
            return
        if job.kind in (*discord_events.EVENT_KINDS, *discord_events.COMP_KINDS,
                        discord_events.DM):
            await relay_events.write(self, job)
            return
        if job.kind != "post" or job.message_pk is None:
            raise Refused(f"unknown kind {job.kind!r}")
        plan = await asyncio.to_thread(self._plan, job.message_pk)
        if plan is None:
            raise Refused("the post or its list is gone, or the list is no longer bridged")
        await self._write_post(job, plan)

    def _plan(self, message_pk: int) -> PostPlan | None:
        with self.ctx.store.read_session() as s:
            return discord_relay.post_plan(s, self.ctx.cfg, message_pk)

    async def _write_post(self, job: RelayJob, plan: PostPlan) -> None:
        post = render_post(plan.source)
        channel = await self._channel(plan.channel_id)
        hook = await self._webhook(channel)
        thread_id = plan.discord_thread_id
        done = job.parts_sent
        list_thread = plan.source.thread_id
        if thread_id is not None:
            await self._store(discord_relay.record_thread, list_thread, thread_id, plan.channel_id)
        elif isinstance(channel, discord.ForumChannel):  # the first part opens the forum post
            first = await self._timed(hook.send(
                post.parts[0], username=post.username, thread_name=post.thread_title,
                allowed_mentions=NO_PINGS, wait=True))
            thread_id = str(first.channel.id)

            def opened(s: Any) -> None:
                discord_relay.record_thread(s, list_thread, str(thread_id), plan.channel_id)
                discord_relay.part_sent(s, job.id, str(first.id))
            await self._store(opened)
            done = 1
        else:
            starter = await self._timed(channel.send(post.starter, allowed_mentions=NO_PINGS))
            thread = await self._timed(starter.create_thread(name=post.thread_title))
            thread_id = str(thread.id)
            await self._store(discord_relay.record_thread, list_thread, thread_id, plan.channel_id)
        target = discord.Object(int(thread_id))
        for part in post.parts[done:]:
            try:
                sent = await self._timed(hook.send(part, username=post.username, thread=target,
                                                   allowed_mentions=NO_PINGS, wait=True))
            except discord.NotFound as e:
                if e.code == UNKNOWN_CHANNEL and plan.discord_thread_id is not None:
                    raise ThreadGone(plan.discord_thread_id, e) from e
                raise
            await self._store(discord_relay.part_sent, job.id, str(sent.id))

    async def _timed(self, call: Any) -> Any:
        return await asyncio.wait_for(call, self.timing.send_timeout)

    async def _channel(self, channel_id: str) -> Any:
        channel = self.client.get_channel(int(channel_id))
        if channel is None:
            channel = await self._timed(self.client.fetch_channel(int(channel_id)))
        if not isinstance(channel, (discord.TextChannel, discord.ForumChannel)):
            raise Refused(f"channel {channel_id} is not a text or forum channel")
        return channel

    async def _webhook(self, channel: discord.TextChannel | discord.ForumChannel
                       ) -> discord.Webhook:
        """The channel's webhook made by this bot, made now if there is none; cached."""
        cached = self._hooks.get(channel.id)
        if cached is not None:
            return cached
        hook: discord.Webhook
        me = self.client.user.id if self.client.user else None
        for found in await self._timed(channel.webhooks()):
            if found.name == WEBHOOK_NAME and found.token and (
                    found.user is None or found.user.id == me):
                hook = found
                break
        else:
            hook = await self._timed(channel.create_webhook(
                name=WEBHOOK_NAME, reason="Commonroom relays the mailing list's posts"))
        self._hooks[channel.id] = hook
        return hook
