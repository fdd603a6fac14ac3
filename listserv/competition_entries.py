"""Entering a competition: a post released into a competition's thread is an entry.

``posting.release`` calls ``enter`` for every post that goes out (one indexed query when the
thread has no open competition), so email replies and replies in the bridged Discord thread
(which arrive as posts) count the same way.

Invariants:
- One entry per person however many times they post (``UNIQUE(competition_id, person_id)``;
  a racing duplicate is absorbed in a savepoint, never failing the post).
- Only members of the list enter; vendor staff of the excluded organisation do not; posts
  received after the closing time, or released after the draw, do not count. The
  announcement itself is not an entry.
- Pure of posting: this module never imports ``posting`` (posting imports it).
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from listserv import subscriptions
from listserv.models import (
    Address,
    Competition,
    CompetitionEntry,
    CompetitionState,
    MailingList,
    Person,
    PersonKind,
    Role,
)
from listserv.post_row import AnyPost

log = logging.getLogger("commonroom.competitions")


class Entry(enum.StrEnum):
    NONE = "not a competition thread"
    ENTERED = "entered"
    DUPLICATE = "already entered"
    NOT_MEMBER = "not a member of the list"
    EXCLUDED = "staff of the excluded organisation"
    CLOSED = "after the closing time"


def refusal(person: Person | None, comp: Competition, is_member: bool) -> Entry | None:
    """Why this person may not enter (None: they may)."""
    if person is None or not is_member:
        return Entry.NOT_MEMBER
    if comp.exclude_org and person.kind == PersonKind.VENDOR.value and \
            person.organisation.casefold() == comp.exclude_org.casefold():
        return Entry.EXCLUDED
    return None


def enter(session: Session, ml: MailingList, msg: AnyPost) -> Entry:
    """Count ``msg`` (being released to ``ml``) as an entry if it replies in an open
    competition's thread."""
    if msg.thread_id is None:
        return Entry.NONE
    # Every post asks, few threads have a competition: a prebuilt core query, and the row only
    # when there is one. What the post has pending cannot change the answer.
    with session.no_autoflush:
        found = session.execute(_OPEN_IN_THREAD, {"thread_id": msg.thread_id}).first()
    return enter_open(session, ml, msg, found[0] if found is not None else None)


def enter_open(session: Session, ml: MailingList, msg: AnyPost,
               competition_id: int | None) -> Entry:
    """``enter``, for a caller that has read the open competition of ``msg``'s thread (None:
    there is none) with the thread (``threads.ThreadRow.open_competition``)."""
    comp = session.get(Competition, competition_id) if competition_id is not None else None
    if comp is None or comp.message_pk == msg.id or not msg.from_address:
        return Entry.NONE
    return enter_address(session, ml, comp, msg.from_address, at=msg.received_at,
                         message_pk=msg.id)


COMPETITION = Competition.__table__  # type: ignore[attr-defined]
_OPEN_IN_THREAD = select(COMPETITION.c.id).where(
    COMPETITION.c.thread_id == bindparam("thread_id"),
    COMPETITION.c.state == CompetitionState.OPEN.value)


def enter_address(session: Session, ml: MailingList, comp: Competition, address: str, *,
                  at: datetime, message_pk: int | None = None) -> Entry:
    """Enter the person behind ``address`` (a post's sender, or a linked Discord account's
    membership address pressing Enter) if they may, once."""
    assert comp.id is not None and ml.id is not None
    context = {"list": ml.name, "competition": comp.id, "sender": address}
    if comp.state != CompetitionState.OPEN.value or at > comp.closes_at:
        log.info("entry to competition %s refused: %s", comp.id, Entry.CLOSED.value,
                 extra=context)
        return Entry.CLOSED
    sub = subscriptions.find_subscription(session, ml.id, address)
    person = session.exec(select(Person).join(Address, col(Address.person_id) == col(Person.id))
                          .where(Address.email == address)).first()
    refused = refusal(person, comp, sub is not None and sub.role != Role.NONMEMBER.value)
    if refused is not None:
        log.info("entry to competition %s refused: %s", comp.id, refused.value, extra=context)
        return refused
    assert person is not None and person.id is not None
    already = session.exec(select(CompetitionEntry.id).where(
        CompetitionEntry.competition_id == comp.id,
        CompetitionEntry.person_id == person.id)).first()
    if already is not None:
        return Entry.DUPLICATE
    try:
        with session.begin_nested():
            session.add(CompetitionEntry(competition_id=comp.id, person_id=person.id,
                                         address=address, message_pk=message_pk, entered_at=at))
    except IntegrityError:  # the same person's other post, committed meanwhile
        return Entry.DUPLICATE
    log.info("entry to competition %s", comp.id, extra=context)
    return Entry.ENTERED
