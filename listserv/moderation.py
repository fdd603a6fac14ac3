"""The moderation queue: list held posts and act on them, once.

Invariants:
- An action on a held post happens at most once: acting on an item already handled says so and
  changes nothing (approving twice delivers once).
- Every action is written to the audit log with who, what and why; a rejected sender is told the
  reason; an approved post goes out through the same fan-out as any accepted post.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from listserv import audit, notices, outbox
from listserv.config import Config
from listserv.lists import list_info
from listserv.models import Action, Held, MailingList, Message, utcnow
from listserv.posting import STATUS_FOR, fan_out


@dataclass(frozen=True)
class QueueItem:
    id: int
    list_name: str
    sender: str
    subject: str
    reason: str
    held_at: datetime


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str


def pending(session: Session, ml: MailingList) -> list[QueueItem]:
    rows = session.exec(select(Held, Message).join(
        Message, col(Message.id) == col(Held.message_pk)).where(
        Held.list_id == ml.id, col(Held.resolved_at).is_(None)).order_by(col(Held.id))).all()
    return [QueueItem(h.id or 0, ml.name, m.from_address, m.subject, h.reason, h.held_at)
            for h, m in rows]


def act(session: Session, cfg: Config, held_id: int, action: Action, *, actor: str,
        reason: str = "") -> ActionResult:
    if action is Action.HOLD:
        return ActionResult(False, "a held post is already held; approve, reject or discard it")
    held = session.get(Held, held_id)
    if held is None:
        return ActionResult(False, f"there is no held post number {held_id}; "
                                   "'commonroom queue list LIST' shows the queue")
    if held.resolved_at is not None:
        return ActionResult(False, f"held post {held_id} was already handled: {held.resolution} "
                                   f"by {held.resolved_by or 'the server'} at "
                                   f"{held.resolved_at:%Y-%m-%d %H:%M} UTC")
    ml = session.get(MailingList, held.list_id)
    msg = session.get(Message, held.message_pk)
    assert ml is not None and msg is not None and msg.id is not None and ml.id is not None
    held.resolved_at = utcnow()
    held.resolution = action.value
    held.resolved_by = actor
    msg.status = STATUS_FOR[action].value
    msg.reason = f"{action.value} by {actor}" + (f": {reason}" if reason else "")
    session.add_all([held, msg])
    detail = reason
    if action is Action.ACCEPT:
        count = fan_out(session, ml, msg.id, cfg.server.domain)
        detail = f"delivered to {count} members" + (f"; {reason}" if reason else "")
    elif action is Action.REJECT and msg.from_address:
        info = list_info(ml, cfg)
        outbox.enqueue_notice(session, list_id=ml.id, recipient=msg.from_address,
                              sender=info.address("bounces"),
                              payload=notices.rejected_for_sender(
                                  info, msg.from_address, msg.subject,
                                  reason or "a moderator declined it"))
    audit.record(session, list_id=ml.id, actor=actor, action=f"held-{action.value}",
                 target=f"held {held_id} ({msg.message_id})", detail=detail)
    verb = {Action.ACCEPT: "approved", Action.REJECT: "rejected", Action.DISCARD: "discarded"}
    return ActionResult(True, f"held post {held_id} {verb[action]}: {msg.subject!r} from "
                              f"{msg.from_address}")


