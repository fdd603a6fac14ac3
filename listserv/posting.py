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
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from listserv import audit, moderation, notices, outbox, participation, policy, subscriptions
from listserv.config import Config
from listserv.fanout import STATUS_FOR, fan_out
from listserv.lists import list_info
from listserv.message import ParsedMessage
from listserv.models import (
    Action,
    MailingList,
    Message,
    MessageStatus,
    Role,
    Subscription,
    utcnow,
)
from listserv.pipeline import Decision, decide
from listserv.rules import PostFacts
from listserv.rules import automatic_mail as automatic_reason
from listserv.threads import assign_thread

log = logging.getLogger("commonroom.posting")



@dataclass(frozen=True)
class PostResult:
    message_pk: int
    decision: Decision
    held_id: int | None = None
    recipients: int = 0


def posts_since(session: Session, list_id: int, sender: str, since: datetime) -> int:
    """Posts (not administrivia, not discarded) from ``sender`` to the list since ``since``."""
    counted = [s.value for s in (MessageStatus.ACCEPTED, MessageStatus.HELD, MessageStatus.REJECTED)]
    return int(session.execute(select(func.count()).select_from(Message).where(
        col(Message.list_id) == list_id, col(Message.from_address) == sender,
        col(Message.received_at) >= since, col(Message.status).in_(counted))).scalar_one())


def automatic_mail(parsed: ParsedMessage, envelope_from: str) -> str:
    """Why a message is automatic mail (``rules.automatic_mail``, the one definition), or ""."""
    return automatic_reason(null_sender=not envelope_from,
                            auto_submitted=parsed.header("Auto-Submitted") or "",
                            precedence=parsed.header("Precedence") or "")


def facts_for(session: Session, cfg: Config, ml: MailingList, parsed: ParsedMessage,
              sender: str, sub: Subscription | None, *, envelope_from: str,
              policy_hold: str = "") -> PostFacts:
    assert ml.id is not None
    info = list_info(ml, cfg)
    now = utcnow()
    recent = (posts_since(session, ml.id, sender, now - timedelta(hours=1))
              if sender and ml.max_posts_per_hour else 0)
    return PostFacts(
        list_name=ml.name, list_post_address=info.post_address, list_id=info.list_id,
        sender=sender, subject=parsed.subject, size=parsed.size,
        max_bytes=ml.max_message_bytes or cfg.server.max_message_bytes, now=now,
        list_ids_seen=parsed.get_all("List-Id"), x_loop=parsed.get_all("X-Loop"),
        auto_submitted=parsed.header("Auto-Submitted") or "",
        precedence=parsed.header("Precedence") or "", null_sender=not envelope_from,
        is_member=sub is not None and sub.role != Role.NONMEMBER.value,
        moderation=sub.moderation if sub else "",
        nonmember_action=ml.nonmember_action,
        bans=tuple(subscriptions.active_bans(session, ml.id, now)),
        emergency=ml.emergency, posts_last_hour=recent,
        max_posts_per_hour=ml.max_posts_per_hour, policy_hold=policy_hold)


def post(session: Session, cfg: Config, ml: MailingList, raw: bytes, parsed: ParsedMessage,
         *, envelope_from: str, dmarc_policy: str = "") -> PostResult:
    assert ml.id is not None
    sender = subscriptions.canonical(parsed.from_address or "") or \
        subscriptions.canonical(envelope_from) or ""
    sub = subscriptions.find_subscription(session, ml.id, sender) if sender else None
    verdict = participation.check(session, ml, sender, sub, raw)
    hold_reason = policy.HOLD_REASON if verdict is not None and not verdict.accepted else ""
    decision = decide(facts_for(session, cfg, ml, parsed, sender, sub,
                                envelope_from=envelope_from, policy_hold=hold_reason))
    msg = Message(list_id=ml.id, message_id=parsed.message_id, envelope_from=envelope_from,
                  envelope_to=f"{ml.name}@{cfg.server.domain}", from_address=sender,
                  from_name=parsed.from_name, subject=parsed.subject, date=parsed.date,
                  size=parsed.size, dmarc_policy=dmarc_policy,
                  policy=participation.evidence_json(verdict) if verdict is not None else "",
                  status=STATUS_FOR[decision.action].value, reason=decision.reason, raw=raw)
    session.add(msg)
    session.flush()
    assert msg.id is not None
    msg.thread_id = assign_thread(session, ml.id, parsed.message_id, parsed.references,
                                  parsed.subject, parsed.date or msg.received_at, ml.name)
    session.add(msg)
    info = list_info(ml, cfg)
    context = {"list": ml.name, "message_id": parsed.message_id, "sender": sender,
               "rule": decision.rule, "action": decision.action.value,
               "policy": verdict.case.value if verdict is not None else ""}
    log.info("post %s from %s: %s (%s)", parsed.message_id, sender, decision.action.value,
             decision.reason, extra=context)
    result = PostResult(msg.id, decision)
    if decision.action is Action.ACCEPT:
        result = PostResult(msg.id, decision, recipients=fan_out(session, ml, msg.id,
                                                                 cfg.server.domain))
    elif decision.action is Action.HOLD:
        result = PostResult(msg.id, decision,
                            held_id=moderation.hold(session, cfg, ml, info, msg, decision))
    elif decision.action is Action.REJECT and not decision.is_automatic_mail and sender:
        outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                              sender=info.address("bounces"),
                              payload=notices.rejected_for_sender(info, sender, parsed.subject,
                                                                  decision.reason))
    audit.record(session, list_id=ml.id, actor="pipeline", action=f"post-{decision.action.value}",
                 target=parsed.message_id, detail=f"{decision.rule}: {decision.reason}")
    return result
