"""The moderation queue: hold posts, act on them once (CLI or a moderator's reply), expire them.

Invariants:
- An action on a held post happens at most once, even when two come at the same moment: the
  transition is one conditional UPDATE (``WHERE resolved_at IS NULL``) and only the caller that
  changed the row acts; the other is told it was already handled (approving twice delivers once).
- A reply to a held notice acts only when it carries the notice's secret token (its Reply-To
  address) AND comes from one of the list's moderators AND its first line is exactly one of the
  documented commands; anything else changes nothing and is answered (and refusals audited).
- Notices to a post's sender go through ``sender_notices`` (no backscatter to forged senders).
- Every action is written to the audit log with who, what and why; a rejected sender is told the
  reason; an approved post goes out through the same fan-out as any accepted post.
- Held posts nobody handles are reminded once (half way through ``hold_days``) and then expire
  to the list's ``expiry_action``, with an audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, insert, update
from sqlmodel import Session, col, select

from listserv import (
    audit,
    links,
    notices,
    outbox,
    participation,
    posting,
    sender_notices,
    subscriptions,
)
from listserv.addresses import Kind
from listserv.config import Config
from listserv.decorate import ListInfo
from listserv.fanout import STATUS_FOR
from listserv.lists import list_info
from listserv.models import (
    Action,
    Held,
    MailingList,
    Message,
    Outbox,
    OutboxPriority,
    Role,
    utcnow,
)
from listserv.pipeline import Decision
from listserv.post_row import AnyPost
from listserv.store import site_secret

HELD: Table = Held.__table__  # type: ignore[attr-defined]
OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]


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


@dataclass(frozen=True)
class ReplyCommand:
    action: Action
    reason: str = ""
    future: str = ""  # "" or the sender's handling from now on: accept | hold


# The documented commands (notices._how_to_act), and nothing else: a chatty first line ("OK,
# but ask them to shorten it", "Approve? I'm not sure") must never act on a post.
REPLY_COMMANDS: dict[str, ReplyCommand] = {
    "approve": ReplyCommand(Action.ACCEPT),
    "approve always": ReplyCommand(Action.ACCEPT, future="accept"),
    "approve hold": ReplyCommand(Action.ACCEPT, future="hold"),
    "reject": ReplyCommand(Action.REJECT),
    "discard": ReplyCommand(Action.DISCARD),
}


def parse_reply(text: str) -> ReplyCommand | None:
    """A moderator's reply: the first line of their own words, if it is exactly a command.

    "approve", "approve always" (and accept this sender from now on), "approve hold" (but hold
    this sender's future posts), "reject" with an optional reason, "discard"; any case, spaces
    as you like. Any other first line is None: nothing is done. Pure.
    """
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(">"):
            continue
        words = line.split()
        if words[0].lower() == "reject":
            return ReplyCommand(Action.REJECT, reason=line[len(words[0]):].strip())
        return REPLY_COMMANDS.get(" ".join(words).lower())
    return None


def pending(session: Session, ml: MailingList) -> list[QueueItem]:
    rows = session.exec(select(Held, Message).join(
        Message, col(Message.id) == col(Held.message_pk)).where(
        Held.list_id == ml.id, col(Held.resolved_at).is_(None)).order_by(col(Held.id))).all()
    return [QueueItem(h.id or 0, ml.name, m.from_address, m.subject, h.reason, h.held_at)
            for h, m in rows]


def hold(session: Session, cfg: Config, ml: MailingList, info: ListInfo, msg: AnyPost,
         decision: Decision) -> int:
    """Put a post in the moderation queue; tell the moderators, and the sender once."""
    assert ml.id is not None and msg.id is not None
    # Core statements rather than ORM objects: a flood holds thousands of posts, and the unit
    # of work (flushes, identity map) cost more than the statements themselves (issue 12).
    held_id: int = session.execute(insert(HELD).values(
        list_id=ml.id, message_pk=msg.id, rule=decision.rule, reason=decision.reason,
        held_at=utcnow()).returning(HELD.c.id)).scalar_one()
    token = links.held_token(site_secret(session), held_id)
    session.execute(update(HELD).where(HELD.c.id == held_id)
                    .values(token_hash=links.token_hash(token)))
    # Held notices go at bulk priority: a flood of held spam must not hold up members' copies
    # or confirmations (bench/flood.py), and a moderator gains nothing from them jumping ahead.
    # The rows ``outbox.enqueue_notice`` would add, in one statement.
    policy = participation.describe(msg.policy) if msg.policy else ""
    now = utcnow()
    rows = [outbox.notice_row(list_id=ml.id, recipient=mod, sender=info.address(Kind.BOUNCES),
                              priority=OutboxPriority.BULK, now=now,
                              payload=notices.held_for_moderators(
                                  info, mod, held_id, token, msg.from_address, msg.subject,
                                  decision.reason, msg.raw, policy=policy))
            for mod in subscriptions.moderators(session, ml.id)]
    if rows:
        session.execute(insert(OUTBOX), rows)
    # One notice per held message at most (this runs once per message), and only when the
    # sender may be written to (sender_notices: no backscatter to forged or automatic senders).
    if msg.from_address:
        sender_notices.notify(session, list_id=ml.id, address=msg.from_address, kind="held",
                              sender=info.address(Kind.BOUNCES),
                              payload=lambda: notices.held_for_sender(
                                  info, msg.from_address, msg.subject, decision.reason,
                                  rule=decision.rule),
                              raw=msg.raw, envelope_from=msg.envelope_from, now=utcnow(),
                              automatic=decision.is_automatic_mail,
                              priority=OutboxPriority.BULK)
    return held_id


def set_future(session: Session, ml: MailingList, sender: str, future: str, actor: str) -> None:
    """Always accept / always hold this sender from now on (a known non-member if need be)."""
    assert ml.id is not None
    sub = subscriptions.find_subscription(session, ml.id, sender)
    if sub is None:
        subscriptions.add_member(session, ml, sender, role=Role.NONMEMBER, actor=actor)
        sub = subscriptions.find_subscription(session, ml.id, sender)
        assert sub is not None
    sub.moderation = future
    session.add(sub)
    audit.record(session, list_id=ml.id, actor=actor, action="moderation-set", target=sender,
                 detail=future)


def act(session: Session, cfg: Config, held_id: int, action: Action, *, actor: str,
        reason: str = "", future: str = "") -> ActionResult:
    if action is Action.HOLD:
        return ActionResult(False, "a held post is already held; approve, reject or discard it")
    # The transition is one conditional UPDATE: of two moderators (or the CLI and a reply, or
    # expiry) acting at the same moment, exactly one changes the row and acts; on PostgreSQL
    # the other waits for that commit and then matches nothing. Checking first and writing
    # later would let both fan the post out.
    claimed = session.execute(
        update(Held).where(col(Held.id) == held_id, col(Held.resolved_at).is_(None))
        .values(resolved_at=utcnow(), resolution=action.value, resolved_by=actor)
        .execution_options(synchronize_session=False))
    held = session.get(Held, held_id, populate_existing=True)
    if held is None:
        return ActionResult(False, f"there is no held post number {held_id}; "
                                   "'commonroom queue list LIST' shows the queue")
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        assert held.resolved_at is not None
        return ActionResult(False, f"held post {held_id} was already handled: {held.resolution} "
                                   f"by {held.resolved_by or 'the server'} at "
                                   f"{held.resolved_at:%Y-%m-%d %H:%M} UTC")
    ml = session.get(MailingList, held.list_id)
    msg = session.get(Message, held.message_pk)
    assert ml is not None and msg is not None and msg.id is not None and ml.id is not None
    msg.status = STATUS_FOR[action].value
    msg.reason = f"{action.value} by {actor}" + (f": {reason}" if reason else "")
    session.add(msg)
    detail = reason
    if action is Action.ACCEPT:
        count = posting.release(session, cfg, ml, msg)
        detail = f"delivered to {count} members" + (f"; {reason}" if reason else "")
    elif action is Action.REJECT and msg.from_address:
        info = list_info(ml, cfg)
        sender_notices.notify(session, list_id=ml.id, address=msg.from_address,
                              kind="rejected", sender=info.address(Kind.BOUNCES),
                              payload=notices.rejected_for_sender(
                                  info, msg.from_address, msg.subject,
                                  reason or "a moderator declined it"),
                              raw=msg.raw, envelope_from=msg.envelope_from, now=utcnow(),
                              by_a_person=actor != "expiry")
    audit.record(session, list_id=ml.id, actor=actor, action=f"held-{action.value}",
                 target=f"held {held_id} ({msg.message_id})", detail=detail)
    if future and msg.from_address:
        set_future(session, ml, msg.from_address, future, actor)
    verb = {Action.ACCEPT: "approved", Action.REJECT: "rejected", Action.DISCARD: "discarded"}
    then = f"; future posts from {msg.from_address}: {future}" if future else ""
    return ActionResult(True, f"held post {held_id} {verb[action]}: {msg.subject!r} from "
                              f"{msg.from_address}{then}")


def held_for_token(session: Session, token: str) -> Held | None:
    if not token:
        return None
    return session.exec(select(Held).where(Held.token_hash == links.token_hash(token))).first()


def act_by_reply(session: Session, cfg: Config, held: Held, sender: str,
                 text: str) -> ActionResult:
    """A moderator answered a held notice by mail."""
    ml = session.get(MailingList, held.list_id)
    assert ml is not None and ml.id is not None and held.id is not None
    if sender not in subscriptions.moderators(session, ml.id):
        audit.record(session, list_id=ml.id, actor=sender or "unknown", action="reply-refused",
                     target=f"held {held.id}", detail="not a moderator of this list")
        return ActionResult(False, f"{sender} is not a moderator of {ml.name}")
    command = parse_reply(text)
    if command is None:
        result = ActionResult(False, "nothing was done: the first line of your reply was "
                                     "not a command.\n\n" + notices.how_to_act(held.id))
    else:
        result = act(session, cfg, held.id, command.action, actor=sender, reason=command.reason,
                     future=command.future)
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                          sender=info.address(Kind.BOUNCES),
                          payload=notices.moderation_result(info, sender, held.id, result.message))
    return result


# --- reminders and expiry ------------------------------------------------------------------

def due(held_at: datetime, reminded_at: datetime | None, hold_days: int,
        now: datetime) -> str | None:
    """What a waiting held post needs now: "expire", "remind" or nothing. Pure."""
    if now >= held_at + timedelta(days=hold_days):
        return "expire"
    if reminded_at is None and now >= held_at + timedelta(days=hold_days) / 2:
        return "remind"
    return None


def sweep(session: Session, cfg: Config, now: datetime | None = None) -> tuple[int, int]:
    """Remind and expire what is due; returns (reminded, expired)."""
    now = now or utcnow()
    sender_notices.prune(session, now)
    reminded = expired = 0
    rows = session.exec(select(Held, MailingList, Message)
                        .join(MailingList, col(MailingList.id) == col(Held.list_id))
                        .join(Message, col(Message.id) == col(Held.message_pk))
                        .where(col(Held.resolved_at).is_(None)).order_by(col(Held.id))).all()
    for held, ml, msg in rows:
        assert held.id is not None and ml.id is not None
        what = due(held.held_at, held.reminded_at, ml.hold_days, now)
        if what == "expire":
            act(session, cfg, held.id, Action(ml.expiry_action), actor="expiry",
                reason=f"no moderator handled it within {ml.hold_days} days")
            expired += 1
        elif what == "remind":
            info = list_info(ml, cfg)
            for mod in subscriptions.moderators(session, ml.id):
                outbox.enqueue_notice(session, list_id=ml.id, recipient=mod,
                                      sender=info.address(Kind.BOUNCES),
                                      payload=notices.held_reminder(
                                          info, mod, held.id,
                                          links.held_token(site_secret(session), held.id),
                                          msg.from_address, msg.subject,
                                          held.reason, held.held_at + timedelta(days=ml.hold_days),
                                          ml.expiry_action))
            held.reminded_at = now
            session.add(held)
            audit.record(session, list_id=ml.id, actor="expiry", action="held-reminded",
                         target=f"held {held.id}")
            reminded += 1
    return reminded, expired
