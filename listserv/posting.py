"""Posting: a message to LIST@DOMAIN is judged by the rules and stored, then either fanned out to
the members (joining its thread) or held, rejected or discarded, with the right people told.

Invariants:
- Called inside the caller's transaction: the stored message, its thread, its decision, its
  outbox rows and its notices commit together or not at all (so "250 OK" means all of it).
- Fan-out is one INSERT … SELECT over the subscriptions: no member row passes through Python,
  so memory does not grow with the list.
- Nobody is ever answered for a loop or for automatic mail (no auto-reply storms).
- Only posts that go out (accepted on arrival by ``post``, or approved later: ``release``) join
  or name a thread and get ``accepted_at``; a held, rejected or discarded post touches no thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from listserv import (
    audit,
    competition_entries,
    discord_bridge,
    ids_ahead,
    moderation,
    notices,
    participation,
    search,
    sender_notices,
    subscriptions,
    thread_summary,
)
from listserv.addresses import Kind, list_address
from listserv.config import Config
from listserv.fanout import STATUS_FOR, fan_out, fan_out_uncounted
from listserv.lists import list_info
from listserv.message import ParsedMessage, parse
from listserv.models import (
    Action,
    MailingList,
    Message,
    MessageStatus,
    utcnow,
)
from listserv.pipeline import Decision, decide, reaches
from listserv.post_row import AnyPost, PostRow
from listserv.rules import POLICY_RULE, PostFacts
from listserv.rules import automatic_mail as automatic_reason
from listserv.store import after_commit
from listserv.threads import Placement, place, prefetch, write_thread

log = logging.getLogger("commonroom.posting")

MESSAGE = Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PostResult:
    message_pk: int
    decision: Decision
    held_id: int | None = None
    # Copies queued; None for a post accepted on arrival, whose fan-out is not counted (it goes
    # to the server with the post's other writes, listserv/write_behind.py).
    recipients: int | None = 0


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
              sender: str, standing: subscriptions.Standing, *, envelope_from: str) -> PostFacts:
    """The facts the rules see, but the participation policy's (``post`` adds it if needed)."""
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
        is_member=standing.is_member, moderation=standing.moderation,
        nonmember_action=ml.nonmember_action,
        bans=tuple(subscriptions.active_bans(session, ml.id, now)),
        emergency=ml.emergency, posts_last_hour=recent,
        max_posts_per_hour=ml.max_posts_per_hour)


def post(session: Session, cfg: Config, ml: MailingList, raw: bytes, parsed: ParsedMessage,
         *, envelope_from: str, dmarc_policy: str = "", from_discord: bool = False,
         received_at: datetime | None = None) -> PostResult:
    """Judge and store one post. ``from_discord``: written in a bridged Discord thread (the bot
    built ``raw``), so if accepted it is not relayed back there. ``received_at``: when the SMTP
    door accepted it (default: now)."""
    assert ml.id is not None
    received_at = received_at or utcnow()
    # On PostgreSQL, in the group committer's transactions, the read that placing the post in
    # its thread makes goes now, unread, with the standing's read below: one round trip for
    # both (threads.prefetch; unused if the post is not accepted).
    prefetch(session, ml.id, parsed.message_id, parsed.references, parsed.subject,
             parsed.date or received_at, ml.name)
    sender = subscriptions.canonical(parsed.from_address or "") or \
        subscriptions.canonical(envelope_from) or ""
    # The sender's subscription and person kind, in one query.
    standing = subscriptions.standing(session, ml.id, sender) if sender else \
        subscriptions.Standing()
    facts = facts_for(session, cfg, ml, parsed, sender, standing, envelope_from=envelope_from)
    # The participation policy's fact is the costly one (the body, the earlier public texts):
    # gathered only when the table reaches its rule, and only for a sender in its scope.
    verdict = (participation.check(session, ml, sender, standing, raw)
               if reaches(facts, POLICY_RULE) else None)
    if verdict is not None:
        facts = replace(facts, policy_hold=verdict.hold_reason)
    decision = decide(facts)
    accepted_at = None
    placement = None
    if decision.action is Action.ACCEPT:
        # Placed in its thread before its row is written, so the row is inserted once with
        # its thread and ``accepted_at`` (not inserted, then updated: issue 12).
        accepted_at = utcnow()
        placement = place(session, ml.id, parsed.message_id, parsed.references, parsed.subject,
                          parsed.date or received_at, ml.name, write=False)
    thread_id = placement.thread_id if placement is not None else None
    policy = participation.evidence_json(verdict.decision) if verdict else ""
    values = {
        "list_id": ml.id, "thread_id": thread_id, "message_id": parsed.message_id,
        "envelope_from": envelope_from, "envelope_to": list_address(ml.name, cfg.server.domain),
        "from_address": sender, "from_name": parsed.from_name, "subject": parsed.subject,
        "date": parsed.date, "received_at": received_at, "accepted_at": accepted_at,
        "size": parsed.size, "dmarc_policy": dmarc_policy, "policy": policy,
        "public_texts": verdict.public_texts if verdict else None,
        "status": STATUS_FOR[decision.action].value, "reason": decision.reason, "raw": raw,
    }
    # On PostgreSQL the id is taken ahead, so the INSERT goes with the post's other writes.
    pk = ids_ahead.insert(session, MESSAGE, values)
    row = PostRow(pk, ml.id, thread_id, parsed.message_id, envelope_from, sender,
                  parsed.from_name, parsed.subject, parsed.date, received_at, policy, raw)
    info = list_info(ml, cfg)
    context = {"list": ml.name, "message_id": parsed.message_id, "sender": sender,
               "rule": decision.rule, "action": decision.action.value,
               "policy": verdict.decision.case.value if verdict else ""}
    # Logged once committed: a post whose group fails to commit was not judged after all.
    after_commit(session, lambda: log.info("post %s from %s: %s (%s)", parsed.message_id,
                                           sender, decision.action.value, decision.reason,
                                           extra=context))
    result = PostResult(pk, decision)
    if placement is not None:
        archive_post(session, row, placement, body=verdict.body if verdict else None,
                     person=(standing.person_name,))
        _go_out(session, cfg, ml, row, placement, from_discord=from_discord, count=False)
        result = PostResult(pk, decision, recipients=None)
    elif decision.action is Action.HOLD:
        result = PostResult(pk, decision,
                            held_id=moderation.hold(session, cfg, ml, info, row, decision))
    elif decision.action is Action.REJECT and sender:
        sender_notices.notify(session, list_id=ml.id, address=sender, kind="rejected",
                              sender=info.address(Kind.BOUNCES),
                              payload=lambda: notices.rejected_for_sender(
                                  info, sender, parsed.subject, decision.reason),
                              raw=raw, envelope_from=envelope_from, now=utcnow(),
                              automatic=decision.is_automatic_mail)
    audit.record(session, list_id=ml.id, actor="pipeline", action=f"post-{decision.action.value}",
                 target=parsed.message_id, detail=f"{decision.rule}: {decision.reason}")
    return result


def release(session: Session, cfg: Config, ml: MailingList, msg: Message,
            parsed: ParsedMessage | None = None, *, from_discord: bool = False) -> int:
    """A stored post goes out to the list: approved by a moderator (``moderation.act`` calls
    this), or a post by the list itself (a competition, an event). Returns how many members it
    was queued for. (A post the rules accept on arrival takes the same steps in ``post``.)

    Only now does it join (or, as the earliest post, name) its thread, is indexed for search,
    and ``accepted_at`` is set: held, rejected and discarded posts stay out of threads,
    digests and search.
    """
    assert ml.id is not None and msg.id is not None
    msg.accepted_at = utcnow()
    refs = (parsed or parse(msg.raw, domain=cfg.server.domain)).references \
        if msg.thread_id is None else ()
    placement = join_archive(session, ml, msg, refs)
    count = _go_out(session, cfg, ml, msg, placement, from_discord=from_discord, count=True)
    assert count is not None
    return count


def _go_out(session: Session, cfg: Config, ml: MailingList, msg: AnyPost,
            placement: Placement | None, *, from_discord: bool, count: bool) -> int | None:
    """What follows a post's joining the archive when it goes out: the bridge, a competition,
    the members' copies (how many, if ``count``: else the fan-out may wait for the post's
    other writes, listserv/write_behind.py)."""
    assert msg.id is not None
    discord_bridge.queue_post(session, cfg, ml, msg, from_discord=from_discord)
    # A reply in a competition's thread enters it (the competition read with the thread).
    if placement is not None:
        competition_entries.enter_open(session, ml, msg, placement.thread.open_competition)
    else:
        competition_entries.enter(session, ml, msg)
    if not count:
        fan_out_uncounted(session, ml, msg.id, cfg.server.domain)
        return None
    return fan_out(session, ml, msg.id, cfg.server.domain)


def join_archive(session: Session, ml: MailingList, msg: Message,
                 references: Sequence[str]) -> Placement | None:
    """What makes a stored post part of the archive: its thread and its search text. Returns
    where it was placed (None: it had a thread already).

    Shared by ``release`` and the archive import (``archive_import``, which delivers nothing),
    so whatever the archive keeps per post is kept the same way for both (and by ``post``, which
    places a post before storing it, then calls ``archive_post`` as this does).
    """
    assert ml.id is not None and msg.id is not None
    session.add(msg)
    if msg.thread_id is None:
        placement = place(session, ml.id, msg.message_id, references, msg.subject,
                          msg.date or msg.received_at, ml.name, write=False)
        msg.thread_id = placement.thread_id
        archive_post(session, msg, placement)
        session.flush()  # the post's thread and accepted_at
        return placement
    # Posts held before migration 0004 were threaded on arrival: their thread is rebuilt.
    thread_summary.refresh(session, msg.thread_id)
    search.index_post(session, msg)
    return None


def archive_post(session: Session, msg: AnyPost, placement: Placement, *,
                 body: str | None = None, person: tuple[str | None] | None = None) -> None:
    """A post just placed in its thread (``place``): the thread's summary, its search text.
    What the pipeline has read already is not read again: ``body``, the post's text (the
    participation policy's); ``person``, the name of the sender's person (``Standing``)."""
    summary = thread_summary.after_join(session, msg, placement,  # the thread list reads it
                                        person=person)
    # The thread's new counts and summary in one UPDATE.
    write_thread(session, placement.thread_id, {**placement.changes, **summary})
    search.index_post(session, msg, new=True, body=body)  # findable from the moment it goes out
