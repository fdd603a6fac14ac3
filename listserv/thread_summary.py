"""A thread's summary for the archive: its opening post, a few participants, how many took part.

Kept in the ``thread`` row and refreshed in the transaction that releases a post
(``posting.release``), so the archive's thread list is one indexed query and never counts posts
per page view. Refreshing reads the thread's accepted posts again, which also makes it right after
``threads.assign_thread`` merged two threads.

Invariants: only accepted posts count; the opening post is the earliest (by its Date, then its
id); ``participants`` is a JSON list of at most ``SHOWN`` names in order of first appearance, and
``participant_count`` counts every distinct author. Migration 0011 fills older threads the same way.
"""

from __future__ import annotations

import json

from sqlalchemy import func
from sqlmodel import Session, col, select

from listserv import names
from listserv.models import Address, Message, Person, Thread

SHOWN = 5  # names shown in a thread list row ("Ann, Bo, Cy and 4 others")


def author_label(name: str, address: str) -> str:
    """How a post's author is named in the archive: their name, else the address's local part
    (never the whole address: public pages are harvested)."""
    return names.clean(name) or address.split("@", 1)[0]


def refresh(session: Session, thread_id: int) -> None:
    """Recompute the summary columns of ``thread_id`` from its accepted posts. Flushes."""
    thread = session.get(Thread, thread_id)
    if thread is None:
        return
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
    thread.opening_pk = opening
    thread.participants = json.dumps(shown)
    thread.participant_count = len(everyone)
    session.add(thread)
    session.flush()


def participants(thread: Thread) -> list[str]:
    """The names kept in ``thread.participants`` ([] for an unreadable value)."""
    try:
        value = json.loads(thread.participants or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
