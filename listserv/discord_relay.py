"""The relay queue's bookkeeping (``discord_relay`` rows), for the bot's relay worker
(``bot/relay.py``): what is due, what to write, and what was written.

Invariants:
- Order: rows go out in ``id`` order within a list (rows without a list, such as a channel
  message, form one more queue). ``due`` offers only the oldest pending row of each queue, and
  only once its time has come, so a row waiting to be retried holds back the rows behind it.
- Nothing is written twice: each part written is recorded (``parts_sent``, its Discord id) in
  its own transaction as soon as Discord has it, and a retry starts after the parts recorded.
  Only a crash between Discord's answer and that commit can repeat a part, one at most.
- One writer per row: a worker ``claim``s a row (a conditional UPDATE) before writing it and
  clears the claim when it records the outcome, so a second relay worker on the same store
  (two processes that both believe they run the bot) skips it rather than writing it again.
  Claims of a worker that stopped mid-row are cleared by the next worker to start.
- A list thread maps to one Discord thread and back (``discord_thread``): ``record_thread``
  never replaces a mapping that exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from listserv import discord_bridge
from listserv.authors import author_of
from listserv.config import Config
from listserv.discord_render import PostSource
from listserv.lists import list_info
from listserv.models import (
    DiscordRelay,
    DiscordRelayState,
    DiscordThread,
    MailingList,
    Message,
    Thread,
    utcnow,
)

PENDING = DiscordRelayState.PENDING.value


@dataclass(frozen=True)
class RelayJob:
    id: int
    list_id: int | None
    kind: str  # post | channel | dm | event-* | comp-* (listserv.discord_events)
    message_pk: int | None
    channel_id: str
    content: str
    attempts: int
    parts_sent: int
    event_id: int | None = None
    competition_id: int | None = None


@dataclass(frozen=True)
class PostPlan:
    """A post to relay: where (the bridged channel, and the Discord thread if one exists) and
    what (``source``, to render)."""

    list_name: str
    channel_id: str
    discord_thread_id: str | None
    source: PostSource


def _job(r: DiscordRelay) -> RelayJob:
    return RelayJob(r.id or 0, r.list_id, r.kind, r.message_pk, r.channel_id, r.content,
                    r.attempts, r.parts_sent, r.event_id, r.competition_id)


def job(session: Session, relay_id: int) -> RelayJob | None:
    row = session.get(DiscordRelay, relay_id)
    return _job(row) if row is not None else None


def due(session: Session, now: datetime | None = None) -> list[RelayJob]:
    """The oldest pending row of each queue, if it is due and nobody is writing it, in id
    order: one query."""
    now = now or utcnow()
    heads = (select(func.min(DiscordRelay.id)).where(col(DiscordRelay.state) == PENDING)
             .group_by(col(DiscordRelay.list_id)))
    rows = session.exec(select(DiscordRelay).where(
        col(DiscordRelay.id).in_(heads.scalar_subquery()),
        col(DiscordRelay.next_attempt_at) <= now, col(DiscordRelay.claimed_by) == "",
    ).order_by(col(DiscordRelay.id))).all()
    return [_job(r) for r in rows]


def claim(session: Session, relay_id: int, worker: str, now: datetime | None = None
          ) -> RelayJob | None:
    """Make ``worker`` the row's only writer if it is still pending, due and unclaimed; the row
    as it is now (parts written meanwhile counted), or None when another worker has it."""
    now = now or utcnow()
    got = session.execute(update(DiscordRelay).where(
        col(DiscordRelay.id) == relay_id, col(DiscordRelay.state) == PENDING,
        col(DiscordRelay.next_attempt_at) <= now, col(DiscordRelay.claimed_by) == "",
    ).values(claimed_by=worker))
    if not got.rowcount:  # type: ignore[attr-defined]
        return None
    row = session.get(DiscordRelay, relay_id)
    assert row is not None
    session.refresh(row)
    return _job(row)


def unclaim(session: Session, relay_id: int, worker: str) -> None:
    session.execute(update(DiscordRelay).where(
        col(DiscordRelay.id) == relay_id, col(DiscordRelay.claimed_by) == worker,
    ).values(claimed_by=""))


def clear_claims(session: Session, keep: str) -> int:
    """Clear the claims of every worker but ``keep`` (they stopped mid-row); how many."""
    cleared = session.execute(update(DiscordRelay).where(
        col(DiscordRelay.claimed_by) != "", col(DiscordRelay.claimed_by) != keep,
    ).values(claimed_by=""))
    return int(cleared.rowcount or 0)  # type: ignore[attr-defined]


def post_plan(session: Session, cfg: Config, message_pk: int) -> PostPlan | None:
    """What is needed to relay a post; None when the post or its list is gone, or the list is
    no longer bridged."""
    msg = session.get(Message, message_pk)
    if msg is None or msg.list_id is None or msg.thread_id is None:
        return None
    ml = session.get(MailingList, msg.list_id)
    thread = session.get(Thread, msg.thread_id)
    channel = discord_bridge.bridged_channel(cfg, ml.name) if ml is not None else None
    if ml is None or thread is None or channel is None:
        return None
    mapped = discord_bridge.thread_for(session, msg.thread_id)
    if mapped is not None:
        discord_thread: str | None = mapped.discord_thread_id
    else:  # written in Discord, held, approved: back into the Discord thread it came from
        post = discord_bridge.discord_post_for(session, message_pk)
        discord_thread = post.discord_thread_id if post is not None else None
    info = list_info(ml, cfg)
    source = PostSource(list_name=ml.name, list_tag=info.tag, web_base_url=info.web_base_url,
                        message_pk=message_pk, thread_id=msg.thread_id,
                        thread_subject=thread.subject or msg.subject, raw=msg.raw,
                        author=author_of(session, msg))
    return PostPlan(ml.name, channel, discord_thread, source)


def record_thread(session: Session, thread_id: int, discord_thread_id: str,
                  channel_id: str) -> None:
    """Tie a list thread to the Discord thread that now carries it, unless either is tied."""
    if discord_bridge.thread_for(session, thread_id) is not None:
        return
    if discord_bridge.list_thread_for(session, discord_thread_id) is not None:
        return
    session.add(DiscordThread(thread_id=thread_id, discord_thread_id=discord_thread_id,
                              channel_id=channel_id))


def forget_thread(session: Session, relay_id: int, discord_thread_id: str) -> None:
    """The Discord thread is gone (deleted in Discord): untie it, and write the post whole
    into the thread that replaces it."""
    session.execute(delete(DiscordThread).where(
        col(DiscordThread.discord_thread_id) == discord_thread_id))
    session.execute(update(DiscordRelay).where(col(DiscordRelay.id) == relay_id).values(
        parts_sent=0, discord_message_ids=""))


def part_sent(session: Session, relay_id: int, discord_message_id: str) -> None:
    row = session.get(DiscordRelay, relay_id)
    assert row is not None
    row.parts_sent += 1
    row.discord_message_ids = f"{row.discord_message_ids} {discord_message_id}".strip()
    session.add(row)


def finish(session: Session, relay_id: int) -> None:
    session.execute(update(DiscordRelay).where(col(DiscordRelay.id) == relay_id).values(
        state=DiscordRelayState.SENT.value, sent_at=utcnow(), last_error="", claimed_by=""))


def retry_later(session: Session, relay_id: int, error: str, delay: float) -> datetime:
    """Count a failed attempt and set the next one ``delay`` seconds from now."""
    at = utcnow() + timedelta(seconds=delay)
    session.execute(update(DiscordRelay).where(col(DiscordRelay.id) == relay_id).values(
        attempts=DiscordRelay.attempts + 1, next_attempt_at=at, last_error=error[:500],
        claimed_by=""))
    return at


def give_up(session: Session, relay_id: int, error: str) -> None:
    session.execute(update(DiscordRelay).where(col(DiscordRelay.id) == relay_id).values(
        state=DiscordRelayState.FAILED.value, attempts=DiscordRelay.attempts + 1,
        last_error=error[:500], claimed_by=""))
