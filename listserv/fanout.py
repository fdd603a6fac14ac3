"""Fan-out: one outbox row per member who takes a post (or a digest), made by the database itself.

Invariant: no member row passes through Python (one INSERT … SELECT), so memory does not grow
with the size of the list; the rows commit with the decision that caused them.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Integer, String, bindparam, func, insert, literal, select
from sqlmodel import Session

from listserv import write_behind
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


def fan_out_uncounted(session: Session, ml: MailingList, message_pk: int, domain: str) -> None:
    """``fan_out`` for a caller that does not need the count: in a write-behind scope the
    INSERT … SELECT goes with the post's other writes, in one round trip."""
    assert ml.id is not None
    write_behind.defer(session, _QUEUE, _params(ml, domain, DeliveryMode.EACH, message_pk, None))


def queue_for_members(session: Session, ml: MailingList, domain: str, mode: DeliveryMode, *,
                      message_pk: int | None = None, digest_id: int | None = None) -> int:
    """One outbox row per member of ``ml`` whose delivery mode is ``mode``, for a post or a
    digest copy, made by one INSERT … SELECT; returns how many."""
    assert ml.id is not None and (message_pk is None) != (digest_id is None)
    result = cast(CursorResult[Any], session.execute(
        _QUEUE, _params(ml, domain, mode, message_pk, digest_id)))
    return int(result.rowcount or 0)


def _params(ml: MailingList, domain: str, mode: DeliveryMode, message_pk: int | None,
            digest_id: int | None) -> dict[str, Any]:
    # VERP: LIST-bounces+user=host@DOMAIN, built by the database from each member's address.
    prefix, suffix = verp_affixes(ml.name, domain)
    return {"list_id": ml.id, "message_pk": message_pk, "digest_id": digest_id,
            "prefix": prefix, "suffix": suffix, "now": utcnow(), "mode": mode.value}


def _queue_statement() -> Executable:
    """``queue_for_members``' INSERT … SELECT, built once (building it cost more Python time than
    running it, once per post: issue 12); the list, post, affixes and time are parameters."""
    outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
    sub_t = Subscription.__table__  # type: ignore[attr-defined]
    addr_t = Address.__table__  # type: ignore[attr-defined]
    now = bindparam("now", type_=outbox_t.c.created_at.type)
    verp = (bindparam("prefix", type_=String)
            + func.replace(addr_t.c.email, "@", "=") + bindparam("suffix", type_=String))
    chosen = select(
        bindparam("list_id", type_=Integer), bindparam("message_pk", type_=Integer),
        bindparam("digest_id", type_=Integer), addr_t.c.email, verp,
        literal(OutboxState.PENDING.value, String), literal(0, Integer), now, now,
        literal("", String),
    ).select_from(sub_t.join(addr_t, sub_t.c.address_id == addr_t.c.id)).where(
        sub_t.c.list_id == bindparam("list_id", type_=Integer),
        sub_t.c.delivery_mode == bindparam("mode", type_=String),
        sub_t.c.role != Role.NONMEMBER.value,
        sub_t.c.delivery_disabled_at.is_(None))  # bounces disabled it (listserv/bounce_score)
    # rowcount of an INSERT is only kept when asked for (SQLAlchemy 2.x; PostgreSQL gives -1).
    return insert(outbox_t).from_select(
        ["list_id", "message_pk", "digest_id", "recipient", "sender", "state", "attempts",
         "next_attempt_at", "created_at", "last_error"], chosen).execution_options(
        preserve_rowcount=True)


_QUEUE = _queue_statement()
