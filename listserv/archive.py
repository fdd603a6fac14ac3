"""The archive's queries: lists, a list's threads, a thread's posts, one message, the feed.

The web door (``listserv/web/archive.py``) calls these over a read session and only renders what
they return. Who may read an archive is ``archive_access``'s decision, taken before these run.

Invariants:
- Only accepted posts appear (``accepted_at`` set and status accepted): held, rejected,
  discarded, shunted and administrative mail never does, whatever id is asked for.
- Every page is a fixed number of indexed queries, whatever the size of the list: threads are
  keyset-paged on ``(list_id, last_post_at, id)`` (``Cursor``), never with OFFSET, and thread
  summaries come from the ``thread`` row (``thread_summary``), not from counting posts.
- Authors are named, never shown by address (public pages are harvested); vendor staff carry
  their organisation, from the person record (not from headers a sender could write).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, literal, tuple_
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from listserv import list_admin, thread_pages, thread_summary
from listserv.archive_access import Archive
from listserv.message import reply_ids
from listserv.models import (
    Address,
    MailingList,
    Message,
    MessageStatus,
    Person,
    PersonKind,
    Thread,
)
from listserv.reply_tree import Node, Post, build, flatten

PAGE_SIZE = 25
WEEKS = 12  # bars in a list's posts-per-week chart


# --- lists ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListCard:
    name: str
    description: str
    members: int
    posts_this_month: int
    weekly: tuple[int, ...]  # accepted posts per week, oldest first, the last ending now


def _accepted() -> ColumnElement[bool]:
    return and_(col(Message.accepted_at).is_not(None),
                col(Message.status) == MessageStatus.ACCEPTED.value)


def week_starts(now: datetime, weeks: int = WEEKS) -> list[datetime]:
    """The starts of the ``weeks`` seven-day windows ending at ``now``, oldest first."""
    return [now - timedelta(days=7 * (weeks - i)) for i in range(weeks)]


def activity(session: Session, list_id: int, now: datetime) -> tuple[int, tuple[int, ...]]:
    """Posts accepted this calendar month (UTC) and per week for ``WEEKS`` weeks: one scan of
    the (list_id, accepted_at) index."""
    month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts = week_starts(now)
    ends = [*starts[1:], now + timedelta(seconds=1)]
    at = col(Message.accepted_at)
    columns = [func.sum(case((and_(at >= month), 1), else_=0))]
    columns += [func.sum(case((and_(at >= s, at < e), 1), else_=0)) for s, e in zip(starts, ends,
                                                                                    strict=True)]
    row = session.execute(select(*columns).where(
        Message.list_id == list_id, at >= min(month, starts[0]),
        Message.status == MessageStatus.ACCEPTED.value)).one()
    values = [int(v or 0) for v in row]
    return values[0], tuple(values[1:])


def public_lists(session: Session, now: datetime) -> list[ListCard]:
    """Every list whose archive is public, by name, with its members and activity."""
    cards = []
    for ml in session.exec(select(MailingList).where(MailingList.archive == Archive.PUBLIC.value)
                           .order_by(MailingList.name)):
        assert ml.id is not None
        month, weekly = activity(session, ml.id, now)
        cards.append(ListCard(ml.name, ml.description, list_admin.member_count(session, ml.id),
                              month, weekly))
    return cards


def chart_points(weekly: Sequence[int], width: int = 120, height: int = 24) -> list[tuple[int, int]]:
    """Bar heights for the inline SVG chart: (x, bar height) per week, scaled to ``height``."""
    top = max(weekly, default=0) or 1
    step = width // max(len(weekly), 1)
    return [(i * step, round(v * height / top)) for i, v in enumerate(weekly)]


# --- a list's threads -------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where a page of threads continues: before this (last_post_at, id)."""

    at: datetime
    thread_id: int

    def encode(self) -> str:
        micros = int(self.at.timestamp() * 1_000_000)
        return f"{micros}-{self.thread_id}"

    @staticmethod
    def decode(text: str | None) -> Cursor | None:
        """The cursor in ``?before=``, or None for anything that is not one."""
        m = re.fullmatch(r"(-?\d{1,20})-(\d{1,18})", text or "")
        if m is None:
            return None
        try:
            at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(m.group(1)))
        except OverflowError:
            return None
        return Cursor(at, int(m.group(2)))


@dataclass(frozen=True)
class ThreadRow:
    id: int
    subject: str
    started: datetime
    last: datetime
    posts: int
    participants: tuple[str, ...]
    participant_count: int

    @property
    def replies(self) -> int:
        return max(self.posts - 1, 0)

    @property
    def others(self) -> int:
        """Participants not named in ``participants``."""
        return max(self.participant_count - len(self.participants), 0)


@dataclass(frozen=True)
class ThreadPage:
    rows: tuple[ThreadRow, ...]
    next: Cursor | None  # None on the last page


def _row(t: Thread) -> ThreadRow:
    assert t.id is not None
    return ThreadRow(t.id, t.subject, t.first_post_at, t.last_post_at, t.post_count,
                     tuple(thread_summary.participants(t)), t.participant_count)


def threads(session: Session, list_id: int, before: Cursor | None = None,
            limit: int = PAGE_SIZE) -> ThreadPage:
    """A page of the list's threads by latest activity, newest first."""
    q = select(Thread).where(Thread.list_id == list_id, Thread.post_count > 0)
    if before is not None:
        # A row-value comparison: both SQLite and PostgreSQL seek the index to the cursor
        # (an OR of the two conditions makes SQLite walk from the newest thread instead).
        q = q.where(tuple_(col(Thread.last_post_at), col(Thread.id))
                    < tuple_(literal(before.at, UTCDateTime()), literal(before.thread_id)))
    found = list(session.exec(q.order_by(col(Thread.last_post_at).desc(), col(Thread.id).desc())
                              .limit(limit + 1)))
    rows = tuple(_row(t) for t in found[:limit])
    more = len(found) > limit
    return ThreadPage(rows, Cursor(rows[-1].last, rows[-1].id) if more and rows else None)


def new_threads(session: Session, list_id: int, limit: int = 20) -> list[tuple[ThreadRow, Message | None]]:
    """The newest threads by when they started, with their opening posts (for the feed)."""
    found = list(session.exec(select(Thread).where(Thread.list_id == list_id, Thread.post_count > 0)
                              .order_by(col(Thread.first_post_at).desc(), col(Thread.id).desc())
                              .limit(limit)))
    pks = [t.opening_pk for t in found if t.opening_pk is not None]
    openings = {m.id: m for m in session.exec(select(Message).where(
        col(Message.id).in_(pks), _accepted()))} if pks else {}
    return [(_row(t), openings.get(t.opening_pk)) for t in found]


# --- posts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Author:
    name: str
    organisation: str = ""
    vendor: bool = False

    @property
    def badge(self) -> str:
        """"Acme Ltd, vendor" for vendor staff, "" for everyone else."""
        if not self.vendor:
            return ""
        return f"{self.organisation}, vendor" if self.organisation else "vendor"


def authors(session: Session, messages: Iterable[Message]) -> dict[int, Author]:
    """Each message's author (by message pk): the person's name and kind where known."""
    msgs = list(messages)
    emails = {m.from_address for m in msgs if m.from_address}
    people: dict[str, Person] = {}
    if emails:
        rows = session.exec(select(Address.email, Person).join(
            Person, col(Person.id) == col(Address.person_id)).where(col(Address.email).in_(emails)))
        people = dict(rows.all())
    out = {}
    for m in msgs:
        assert m.id is not None
        p = people.get(m.from_address)
        name = thread_summary.author_label((p.display_name if p else "") or m.from_name,
                                           m.from_address)
        vendor = bool(p and p.kind == PersonKind.VENDOR.value)
        out[m.id] = Author(name, thread_summary.author_label(p.organisation, "") if vendor and p
                           else "", vendor)
    return out


@dataclass(frozen=True)
class ThreadView:
    thread: ThreadRow
    roots: tuple[Node, ...]
    page: thread_pages.Page  # the posts to show
    messages: dict[int, Message]  # by pk
    authors: dict[int, Author]  # by message pk: the page's posts and their parents


def thread(session: Session, list_id: int, thread_id: int, number: int = 1,
           at: int | None = None) -> ThreadView | None:
    """Page ``number`` of a thread's accepted posts in reply order (or the page showing post
    ``at``, when it is one of them), with the whole reply tree; None if there is no such
    thread here or no such page. The tree needs every post's headers; bodies and authors are
    only wanted for the page's posts."""
    t = session.get(Thread, thread_id)
    if t is None or t.list_id != list_id or t.post_count < 1:
        return None
    msgs = list(session.exec(select(Message).where(Message.thread_id == thread_id, _accepted())
                             .order_by(col(Message.id))))
    if not msgs:
        return None
    posts = []
    for m in msgs:
        assert m.id is not None
        in_reply_to, refs = reply_ids(m.raw, m.message_id)
        posts.append(Post(m.id, m.message_id, refs, m.date or m.received_at, in_reply_to))
    roots = tuple(build(posts))
    order = flatten(roots)
    if at is not None:
        number = thread_pages.page_of(order, at) or number
    page = thread_pages.page(order, number)
    if page is None:
        return None
    by_pk = {m.id: m for m in msgs if m.id is not None}
    named = {n.post.pk for n in page.nodes} | set(page.parent_page)
    return ThreadView(_row(t), roots, page, by_pk,
                      authors(session, [by_pk[pk] for pk in sorted(named)]))


def message(session: Session, list_id: int, pk: int) -> Message | None:
    """An accepted post of the list, or None (also for held, rejected... posts)."""
    m = session.get(Message, pk)
    if m is None or m.list_id != list_id or m.accepted_at is None or \
            m.status != MessageStatus.ACCEPTED.value:
        return None
    return m


def parent_of(session: Session, list_id: int, msg: Message) -> Message | None:
    """The accepted post of the list that ``msg`` answers (its nearest known reference)."""
    in_reply_to, refs = reply_ids(msg.raw, msg.message_id)
    if in_reply_to is not None:
        refs = (*refs, in_reply_to)  # the direct parent first, when the archive has it
    if not refs:
        return None
    found = {m.message_id: m for m in session.exec(select(Message).where(
        Message.list_id == list_id, col(Message.message_id).in_(refs), _accepted()))}
    for ref in reversed(refs):
        if ref in found:
            return found[ref]
    return None
