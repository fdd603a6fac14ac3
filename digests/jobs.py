"""The scheduled jobs. The job store keeps references to these functions by name; each reaches
the running process's store and configuration through ``CONTEXT``, set by the scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from listserv import moderation
from listserv.config import Config
from listserv.models import utcnow
from listserv.store import Store

log = logging.getLogger("commonroom.jobs")

Wake = Callable[[], None]


@dataclass(frozen=True)
class Context:
    store: Store
    cfg: Config
    wake_outbox: Wake


CONTEXT: Context | None = None


def _context() -> Context:
    if CONTEXT is None:
        raise RuntimeError("scheduled jobs run inside 'commonroom serve' (no scheduler context)")
    return CONTEXT


def scheduled_digest(list_name: str) -> None:
    """The weekly digest of one list, for the period that ended at the latest scheduled time."""
    from digests import send  # the job store imports this module early; keep start-up light

    ctx = _context()
    outcome = send.send_scheduled(ctx.store, ctx.cfg, list_name, now=utcnow())
    log.info("digest of %s: %s", list_name, outcome.message, extra={"list": list_name})
    if outcome.queued:
        ctx.wake_outbox()


def sweep(store: Store, cfg: Config, wake_outbox: Wake) -> tuple[int, int]:
    """Remind moderators of waiting held posts and expire overdue ones (one transaction)."""
    with store.session() as s:
        reminded, expired = moderation.sweep(s, cfg)
    if reminded or expired:
        log.info("moderation sweep: reminded %d, expired %d", reminded, expired)
        wake_outbox()
    return reminded, expired


def moderation_sweep() -> None:
    ctx = _context()
    sweep(ctx.store, ctx.cfg, ctx.wake_outbox)


def due_items(store: Store, cfg: Config, wake_outbox: Wake, now: datetime | None = None) -> int:
    """Scheduled posts that are due and competitions that have closed; how many were done."""
    from listserv import competitions, scheduled_posts

    done = len(scheduled_posts.run_due(store, cfg, now)) + \
        len(competitions.draw_due(store, cfg, now)) + bounce_sweep(store, cfg, now)
    if done:
        wake_outbox()
    return done


def bounce_sweep(store: Store, cfg: Config, now: datetime | None = None) -> int:
    """Reminders to members whose delivery bounces disabled, and removal after the last."""
    from listserv import bounces

    with store.session() as s:
        return bounces.sweep(s, cfg, now or utcnow())


def due_items_job() -> None:
    ctx = _context()
    due_items(ctx.store, ctx.cfg, ctx.wake_outbox)
# events (H7)
def remind_events(store: Store, cfg: Config, wake_outbox: Wake) -> int:
    """The day-before reminders of events (each event's once: ``events.send_reminders``)."""
    from listserv import events

    with store.session() as s:
        queued = events.send_reminders(s, cfg, utcnow())
    if queued:
        log.info("event reminders: %d queued", queued)
        wake_outbox()
    return queued


def event_reminders() -> None:
    ctx = _context()
    remind_events(ctx.store, ctx.cfg, ctx.wake_outbox)
