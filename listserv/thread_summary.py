"""A thread's summary for the archive: its opening post, a few participants, how many took part.

Kept in the ``thread`` row and updated in the transaction that releases a post
(``posting.release``), so the archive's thread list is one indexed query and never counts posts
per page view. A post that sorts after the thread's others (the usual case: a new reply) is added
to the summary by ``after_join`` with one query; otherwise (an earlier-dated post, a merge, a
thread threaded before the summary existed) ``refresh`` reads the thread's accepted posts again.

Invariants: only accepted posts count; the opening post is the earliest (by its Date, then its
id); ``participants`` is a JSON list of at most ``SHOWN`` names in order of first appearance, and
``participant_count`` counts every distinct author. Migration 0011 fills older threads the same way.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_
from sqlmodel import Session, col, select

from listserv import names, write_behind
from listserv.models import Address, Message, Person, Thread
from listserv.post_row import AnyPost
from listserv.threads import Placement, ThreadRow, write_thread

SHOWN = 5  # names shown in a thread list row ("Ann, Bo, Cy and 4 others")


def author_label(name: str, address: str) -> str:
    """How a post's author is named in the archive: their name, else the address's local part
    (never the whole address: public pages are harvested)."""
    return names.clean(name) or address.split("@", 1)[0]


def refresh(session: Session, thread_id: int) -> None:
    """Recompute the summary columns of ``thread_id`` from its accepted posts and write them.
    Flushes first, so posts joining it in this session count."""
    session.flush()
    rows = session.exec(
        select(Message.id, Message.from_name, Message.from_address, Person.display_name)
        .join(Address, col(Address.email) == col(Message.from_address), isouter=True)
        .join(Person, col(Person.id) == col(Address.person_id), isouter=True)
        .where(Message.thread_id == thread_id, col(Message.accepted_at).is_not(None))
        .order_by(func.coalesce(col(Message.date), col(Message.received_at)), col(Message.id)))
    shown: list[str] = []
    everyone: set[str] = set()
    opening: int | None = None
    for pk, from_name, address, person_name in rows:
        name = person_name or from_name  # the name they gave us, else the one in the header
        opening = pk if opening is None else opening
        who = (address or name).lower()
        if who in everyone:
            continue
        everyone.add(who)
        label = author_label(name, address)
        if len(shown) < SHOWN and label:
            shown.append(label)
    write_thread(session, thread_id, {"opening_pk": opening, "participants": json.dumps(shown),
                                      "participant_count": len(everyone)})


def after_join(session: Session, msg: AnyPost, placement: Placement, *,
               person: tuple[str | None] | None = None) -> dict[str, Any]:
    """The summary of the thread ``msg`` (accepted) has just joined, brought up to date: added
    from this post when it sorts last in the thread, returned for the caller to write with the
    placement's changes (one UPDATE); else rebuilt and written (``refresh``), and {} returned.

    The result is the same as ``refresh``'s: the opening post and the shown names stay, and the
    author is counted (and shown, while fewer than ``SHOWN`` are) unless an earlier accepted post
    of the thread has the same author key, which one query checks in the database. A thread
    the post has just created has no other post, so given ``person`` (the name of the person
    with the post's address, as ``(name,)``, ``(None,)`` for none) nothing is asked.
    """
    thread = placement.thread
    assert msg.id is not None
    address = msg.from_address or ""
    date = msg.date or msg.received_at
    incremental = not placement.merged and (placement.created or (
        thread.opening_pk is not None and placement.previous_last is not None
        and date >= placement.previous_last))
    # The author key is compared lower-cased in SQL, whose lower() is ASCII-only on SQLite.
    if not incremental or not (address or msg.from_name).isascii():
        refresh(session, placement.thread_id)
        return {}
    key = (address or msg.from_name).lower()
    if placement.created and person is not None:
        last_id, seen, name = None, False, person[0]
    else:
        with session.no_autoflush:  # what is pending (a released post) does not change it
            (last_id, seen, name), = write_behind.rows(session, _AUTHOR_SEEN, {
                "thread_id": placement.thread_id, "id": msg.id, "key": key,
                "address": address})
    # On equal dates posts sort by id: a released held post may be older than later replies.
    if not placement.created and date == placement.previous_last and (last_id or 0) > msg.id:
        refresh(session, placement.thread_id)
        return {}
    shown = participants(thread) if not placement.created else []
    opening, count = (msg.id, 0) if placement.created else (thread.opening_pk,
                                                            thread.participant_count)
    if not seen:
        label = author_label(name or msg.from_name, address)
        if len(shown) < SHOWN and label:
            shown.append(label)
        count += 1
    return {"opening_pk": opening, "participants": json.dumps(shown), "participant_count": count}


def _others() -> tuple[ColumnElement[bool], ...]:
    return (col(Message.thread_id) == bindparam("thread_id"),
            col(Message.accepted_at).is_not(None), col(Message.id) != bindparam("id"))


# Built once (constructing it costs more than running it): the highest id of the thread's other
# accepted posts; whether one of them has this post's author key (its address, else, with no
# address and so no person, its header name); the name of the person with this address.
_AUTHOR_SEEN = select(
    select(func.max(Message.id)).where(*_others()).scalar_subquery(),
    exists().where(*_others(), or_(
        and_(col(Message.from_address) != "",
             func.lower(col(Message.from_address)) == bindparam("key")),
        and_(col(Message.from_address) == "",
             func.lower(col(Message.from_name)) == bindparam("key")))),
    select(Person.display_name).join(Address, col(Address.person_id) == col(Person.id))
    .where(col(Address.email) == bindparam("address")).limit(1).scalar_subquery())


def participants(thread: Thread | ThreadRow) -> list[str]:
    """The names kept in ``thread.participants`` ([] for an unreadable value)."""
    try:
        value = json.loads(thread.participants or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
