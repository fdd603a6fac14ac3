"""Posting: a message to LIST@DOMAIN is stored, threaded, judged by the rules, then either fanned
out to the members or held, rejected or discarded, with the right people told.

Invariants:
- Called inside the caller's transaction: the stored message, its thread, its decision, its
  outbox rows and its notices commit together or not at all (so "250 OK" means all of it).
- Fan-out is one INSERT … SELECT over the subscriptions: no member row passes through Python,
  so memory does not grow with the list.
- Nobody is ever answered for a loop or for automatic mail (no auto-reply storms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Integer, String, func, insert, literal, select
from sqlmodel import Session

from listserv import audit, notices, outbox, subscriptions
from listserv.config import Config
from listserv.decorate import ListInfo
from listserv.lists import list_info
from listserv.message import ParsedMessage
from listserv.models import (
    Action,
    Address,
    DeliveryMode,
    Held,
    MailingList,
    Message,
    MessageStatus,
    OutboxState,
    Subscription,
    utcnow,
)
from listserv.models import Outbox as OutboxRow
from listserv.pipeline import Decision, decide
from listserv.rules import PostFacts
from listserv.threads import assign_thread

log = logging.getLogger("commonroom.posting")

STATUS_FOR = {Action.ACCEPT: MessageStatus.ACCEPTED, Action.HOLD: MessageStatus.HELD,
              Action.REJECT: MessageStatus.REJECTED, Action.DISCARD: MessageStatus.DISCARDED}


@dataclass(frozen=True)
class PostResult:
    message_pk: int
    decision: Decision
    held_id: int | None = None
    recipients: int = 0


def facts_for(session: Session, cfg: Config, ml: MailingList, parsed: ParsedMessage,
              sender: str) -> PostFacts:
    assert ml.id is not None
    info = list_info(ml, cfg)
    sub = subscriptions.find_subscription(session, ml.id, sender) if sender else None
    now = utcnow()
    return PostFacts(
        list_name=ml.name, list_post_address=info.post_address, list_id=info.list_id,
        sender=sender, subject=parsed.subject, size=parsed.size,
        max_bytes=ml.max_message_bytes or cfg.server.max_message_bytes, now=now,
        list_ids_seen=parsed.get_all("List-Id"), x_loop=parsed.get_all("X-Loop"),
        auto_submitted=parsed.header("Auto-Submitted") or "",
        precedence=parsed.header("Precedence") or "",
        is_member=sub is not None, moderation=sub.moderation if sub else "",
        nonmember_action=ml.nonmember_action,
        bans=tuple(subscriptions.active_bans(session, ml.id, now)))


def fan_out(session: Session, ml: MailingList, message_pk: int, domain: str) -> int:
    """Queue one delivery per "each post" member, in the database; returns how many."""
    assert ml.id is not None
    now = utcnow()
    outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
    sub_t = Subscription.__table__  # type: ignore[attr-defined]
    addr_t = Address.__table__  # type: ignore[attr-defined]
    ts = outbox_t.c.created_at.type
    # VERP: LIST-bounces+user=host@DOMAIN, built by the database from each member's address.
    verp = (literal(f"{ml.name}-bounces+", String)
            + func.replace(addr_t.c.email, "@", "=") + literal(f"@{domain}", String))
    chosen = select(
        literal(ml.id, Integer), literal(message_pk, Integer), addr_t.c.email, verp,
        literal(OutboxState.PENDING.value, String), literal(0, Integer),
        literal(now, ts), literal(now, ts), literal("", String),
    ).select_from(sub_t.join(addr_t, sub_t.c.address_id == addr_t.c.id)).where(
        sub_t.c.list_id == ml.id, sub_t.c.delivery_mode == DeliveryMode.EACH.value)
    stmt = insert(outbox_t).from_select(
        ["list_id", "message_pk", "recipient", "sender", "state", "attempts",
         "next_attempt_at", "created_at", "last_error"], chosen)
    result = cast(CursorResult[Any], session.execute(stmt))
    return int(result.rowcount or 0)


def post(session: Session, cfg: Config, ml: MailingList, raw: bytes, parsed: ParsedMessage,
         *, envelope_from: str, dmarc_policy: str = "") -> PostResult:
    assert ml.id is not None
    sender = subscriptions.canonical(parsed.from_address or "") or \
        subscriptions.canonical(envelope_from) or ""
    facts = facts_for(session, cfg, ml, parsed, sender)
    decision = decide(facts)
    msg = Message(list_id=ml.id, message_id=parsed.message_id, envelope_from=envelope_from,
                  envelope_to=f"{ml.name}@{cfg.server.domain}", from_address=sender,
                  from_name=parsed.from_name, subject=parsed.subject, date=parsed.date,
                  size=parsed.size, dmarc_policy=dmarc_policy,
                  status=STATUS_FOR[decision.action].value, reason=decision.reason, raw=raw)
    session.add(msg)
    session.flush()
    assert msg.id is not None
    msg.thread_id = assign_thread(session, ml.id, parsed.message_id, parsed.references,
                                  parsed.subject, parsed.date or msg.received_at, ml.name)
    session.add(msg)
    info = list_info(ml, cfg)
    context = {"list": ml.name, "message_id": parsed.message_id, "sender": sender,
               "rule": decision.rule, "action": decision.action.value}
    log.info("post %s from %s: %s (%s)", parsed.message_id, sender, decision.action.value,
             decision.reason, extra=context)
    result = PostResult(msg.id, decision)
    if decision.action is Action.ACCEPT:
        result = PostResult(msg.id, decision, recipients=fan_out(session, ml, msg.id,
                                                                 cfg.server.domain))
    elif decision.action is Action.HOLD:
        result = PostResult(msg.id, decision, held_id=hold(session, cfg, ml, info, msg, decision))
    elif decision.action is Action.REJECT and not decision.is_automatic_mail and sender:
        outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                              sender=info.address("bounces"),
                              payload=notices.rejected_for_sender(info, sender, parsed.subject,
                                                                  decision.reason))
    audit.record(session, list_id=ml.id, actor="pipeline", action=f"post-{decision.action.value}",
                 target=parsed.message_id, detail=f"{decision.rule}: {decision.reason}")
    return result


def hold(session: Session, cfg: Config, ml: MailingList, info: ListInfo, msg: Message,
         decision: Decision) -> int:
    """Put a post in the moderation queue; tell the moderators, and the sender once."""
    assert ml.id is not None and msg.id is not None
    held = Held(list_id=ml.id, message_pk=msg.id, rule=decision.rule, reason=decision.reason)
    session.add(held)
    session.flush()
    assert held.id is not None
    for mod in subscriptions.moderators(session, ml.id):
        outbox.enqueue_notice(session, list_id=ml.id, recipient=mod,
                              sender=info.address("bounces"),
                              payload=notices.held_for_moderators(
                                  info, mod, held.id, msg.from_address, msg.subject,
                                  decision.reason, msg.raw))
    # One notice per held message (this runs once per message), never to automatic mail.
    if msg.from_address and not decision.is_automatic_mail:
        outbox.enqueue_notice(session, list_id=ml.id, recipient=msg.from_address,
                              sender=info.address("bounces"),
                              payload=notices.held_for_sender(info, msg.from_address,
                                                              msg.subject, decision.reason))
    return held.id
