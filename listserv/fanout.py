"""Fan-out: one outbox row per member who takes a post (or a digest), made by the database itself.

Invariant: no member row passes through Python (one INSERT … SELECT), so memory does not grow
with the size of the list; the rows commit with the decision that caused them.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Integer, String, func, insert, literal, select
from sqlmodel import Session

from listserv.addresses import verp_affixes
from listserv.models import (
    Action,
    Address,
    DeliveryMode,
    MailingList,
    MessageStatus,
    OutboxState,
    Role,
    Subscription,
    utcnow,
)
from listserv.models import Outbox as OutboxRow

STATUS_FOR = {Action.ACCEPT: MessageStatus.ACCEPTED, Action.HOLD: MessageStatus.HELD,
              Action.REJECT: MessageStatus.REJECTED, Action.DISCARD: MessageStatus.DISCARDED}


def fan_out(session: Session, ml: MailingList, message_pk: int, domain: str) -> int:
    """Queue one delivery of a post per "each post" member, in the database; returns how many."""
    return queue_for_members(session, ml, domain, DeliveryMode.EACH, message_pk=message_pk)


def queue_for_members(session: Session, ml: MailingList, domain: str, mode: DeliveryMode, *,
                      message_pk: int | None = None, digest_id: int | None = None) -> int:
    """One outbox row per member of ``ml`` whose delivery mode is ``mode``, for a post or a
    digest copy, made by one INSERT … SELECT; returns how many."""
    assert ml.id is not None and (message_pk is None) != (digest_id is None)
    now = utcnow()
    outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
    sub_t = Subscription.__table__  # type: ignore[attr-defined]
    addr_t = Address.__table__  # type: ignore[attr-defined]
    ts = outbox_t.c.created_at.type
    # VERP: LIST-bounces+user=host@DOMAIN, built by the database from each member's address.
    prefix, suffix = verp_affixes(ml.name, domain)
    verp = (literal(prefix, String)
            + func.replace(addr_t.c.email, "@", "=") + literal(suffix, String))
    chosen = select(
        literal(ml.id, Integer), literal(message_pk, Integer), literal(digest_id, Integer),
        addr_t.c.email, verp, literal(OutboxState.PENDING.value, String), literal(0, Integer),
        literal(now, ts), literal(now, ts), literal("", String),
    ).select_from(sub_t.join(addr_t, sub_t.c.address_id == addr_t.c.id)).where(
        sub_t.c.list_id == ml.id, sub_t.c.delivery_mode == mode.value,
        sub_t.c.role != Role.NONMEMBER.value,
        sub_t.c.delivery_disabled_at.is_(None))  # bounces disabled it (listserv/bounce_score)
    stmt = insert(outbox_t).from_select(
        ["list_id", "message_pk", "digest_id", "recipient", "sender", "state", "attempts",
         "next_attempt_at", "created_at", "last_error"], chosen)
    # rowcount of an INSERT is only kept when asked for (SQLAlchemy 2.x; PostgreSQL gives -1).
    result = cast(CursorResult[Any], session.execute(stmt.execution_options(preserve_rowcount=True)))
    return int(result.rowcount or 0)
