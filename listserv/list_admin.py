"""Creating lists and reporting on them: the queries and changes behind ``commonroom lists``.
Every door (the CLI now; the web and the bot later) calls these over its own session and only
prints what they return.

Kept apart from ``lists.py`` because creating a list subscribes its moderators, and
``subscriptions`` already builds on ``lists``. Invariants: each change is recorded in the audit
log in the caller's transaction; a list's count is of its members (moderators and owners too),
not of the non-member entries that only carry a moderation setting ("approve always").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_
from sqlmodel import Session, col, func, select

from listserv import audit, lists, names, subscriptions
from listserv.models import Held, MailingList, Message, Role, Subscription


@dataclass(frozen=True)
class ListStats:
    name: str
    members: int
    posts_week: int  # accepted in the seven days before ``now``
    held: int  # waiting for a moderator now


@dataclass(frozen=True)
class ListSummary:
    name: str
    description: str
    members: int


def create(session: Session, name: str, *, description: str, moderators: Sequence[str],
           actor: str) -> MailingList:
    """Create the list ``name`` with ``moderators`` (canonical addresses) subscribed as such.

    The caller has checked the name (``lists.name_problem``) and that no list has it."""
    ml = MailingList(name=name, description=names.clean(description))
    session.add(ml)
    session.flush()
    for email in moderators:
        subscriptions.add_member(session, ml, email, role=Role.MODERATOR, actor=actor,
                                 verified=True)
    audit.record(session, list_id=ml.id, actor=actor, action="list-created", target=name)
    return ml


def overview(session: Session) -> list[ListSummary]:
    """Every list, by name, with its number of members."""
    is_member = and_(col(Subscription.list_id) == col(MailingList.id),
                     col(Subscription.role) != Role.NONMEMBER.value)
    rows = session.exec(select(MailingList.name, MailingList.description,
                               func.count(col(Subscription.id)))
                        .join(Subscription, is_member, isouter=True)
                        .group_by(col(MailingList.id)).order_by(MailingList.name)).all()
    return [ListSummary(name, description, count) for name, description, count in rows]


def member_count(session: Session, list_id: int) -> int:
    """Members of the list (any role but the non-member entries)."""
    return session.exec(select(func.count()).select_from(Subscription).where(
        Subscription.list_id == list_id, col(Subscription.role) != Role.NONMEMBER.value)).one()


def change_setting(session: Session, ml: MailingList, key: str, value: str, *,
                   actor: str) -> str | None:
    """Set ``key`` on ``ml`` (``lists.apply_setting``) and record it; returns a problem
    description instead of raising, and then changes nothing."""
    problem = lists.apply_setting(ml, key, value)
    if problem:
        return problem
    session.add(ml)
    audit.record(session, list_id=ml.id, actor=actor, action="list-setting", target=key,
                 detail=value)
    return None


def stats(session: Session, ml: MailingList, now: datetime) -> ListStats:
    """The list's members, its posts accepted in the last seven days, and its held posts."""
    assert ml.id is not None
    posts = session.exec(select(func.count()).select_from(Message).where(
        Message.list_id == ml.id, col(Message.accepted_at) >= now - timedelta(days=7))).one()
    held = session.exec(select(func.count()).select_from(Held).where(
        Held.list_id == ml.id, col(Held.resolved_at).is_(None))).one()
    return ListStats(ml.name, member_count(session, ml.id), posts, held)
