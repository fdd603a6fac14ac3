"""Threading: which conversation a post belongs to.

The decision is pure (``subject_key``, ``decide``); ``assign_thread`` is the one function that
reads and writes the ``thread`` and ``thread_ref`` tables to apply it.

Rules, in order:

1. A post joins the thread of every Message-ID it shares with the list's index: its own id (a
   reply that arrived first already referred to it) or any id in References/In-Reply-To, whether
   that id was received or is only a "phantom" someone referred to.
2. If those ids belong to several threads, the post proves they are one conversation: they are
   merged into the oldest (lowest id) thread. (Thread ids are taken ahead on PostgreSQL,
   ``ids_ahead``: across ``serve`` processes the lowest is the oldest only up to a block;
   any fixed choice would do, and this one is also the order threads are locked in.)
3. Only when no id is known: the thread with the same non-empty ``subject_key`` whose posts lie
   within ``SUBJECT_WINDOW`` of this post's date (lowest id on a tie). This catches replies from
   clients that drop References, and replies to parents the list never saw.
4. Otherwise a new thread.

Invariants kept by ``assign_thread``:
- Every id a post names (its own and its references, trimmed to ``MAX_REFERENCES``) has a
  ``thread_ref`` row afterwards, and all of them point at the thread returned; so posts
  connected by references end up together whatever order they arrive in.
- A merged thread leaves no trace: its ``thread_ref`` and ``message`` rows are moved to the
  surviving thread and its ``thread`` row is deleted.
- ``post_count``, ``first_post_at`` and ``last_post_at`` cover every post assigned; ``subject``
  and ``subject_key`` are those of the earliest post, so the subject fallback matches a
  thread's opening subject, not a renamed branch of it.
- Concurrent posts are placed as if one after the other. SQLite's write lock serialises them;
  on PostgreSQL a post takes an advisory lock per *thread key* it names (each of its ids, its
  non-empty subject key: ``lock_keys``), so two posts naming one id, or one subject, never both
  create its thread; then it locks the rows of the threads it joins or merges (``FOR UPDATE``),
  reading them afresh, so no count is lost. A thread that is gone once locked (merged away
  meanwhile), or that no longer fits the subject, makes it read the index again. A post that
  must not wait (``contention.must_try``: its transaction holds an earlier post's locks) only
  tries them and raises ``contention.Contended`` when one is busy.

Deduplicating posts and supplying a Message-ID when the sender gave none are the caller's job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, cast, delete, insert, literal, null, text, union_all, update
from sqlalchemy import select as core_select
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col
from sqlmodel.sql.sqltypes import UTCDateTime

from listserv import contention, ids_ahead, write_behind
from listserv.models import Competition, CompetitionState, Message, Thread, ThreadRef
from listserv.store import per_transaction

# Posts sharing only a subject belong together when they are this close in time; further apart,
# the same subject ("Meeting minutes", "Help") is a new conversation.
SUBJECT_WINDOW = timedelta(days=30)

# The width of the thread.subject_key and thread_ref.ref columns.
SUBJECT_KEY_MAX = 255
REF_MAX = 998

# A hostile post could name thousands of ids. Keep the first (the root) and the nearest
# ancestors, as Netnews agents trim References: from the second id on, never the first.
MAX_REFERENCES = 100

# Reply and forward markers in the languages mail clients localise them into. Matched after
# NFKC normalisation and casefolding, so "RE", "Aw" and a full-width colon are covered too.
REPLY_MARKERS = ("re", "aw", "fwd", "fw", "sv", "antw", "réf", "ref", "tr", "wg", "vs", "odp",
                 "ynt", "rif", "r", "res", "enc", "回复", "回覆", "答复", "转发", "轉寄")

# Times a post reads the index again because what it read changed before it locked it (a
# merge, a subject renamed); each retry follows another transaction's commit, so a few do.
MAX_REREADS = 20
_PREFETCHED = "commonroom_thread_prefetch"  # per transaction: place's args -> (only_try, Later)

# RFC 5256 2.1 "base subject", widened to the markers above: a marker may carry a count or any
# bracketed blob before its colon ("Re[2]:", "Re [foo]:"); "Réf." keeps its dot.
_MARKER = re.compile(
    r"(?:" + "|".join(sorted((re.escape(m) for m in REPLY_MARKERS), key=len, reverse=True)) + r")"
    r"\.?\s*(?:\[[^\[\]]*\]|\(\d+\)|\^\d+)?\s*:\s*"
)
_BLOB = re.compile(r"\[[^\[\]]*\]\s*")
_SPACE = re.compile(r"\s+")


def subject_key(subject: str, list_name: str | None = None) -> str:
    """The subject reduced to what stays the same across a conversation.

    RFC 5256's base subject, with more languages' reply markers: strips any number of reply and
    forward markers and ``[tag]`` blobs at the start, in any order, ``(fwd)`` trailers and
    ``[fwd: ...]`` wrappers; collapses whitespace, NFKC-normalises and casefolds. A blob that is
    all that is left is kept ("[xyz]" stays "[xyz]"), except the list's own ``[list_name]`` tag,
    which says nothing about the conversation. ``''`` for an empty subject.
    """
    s = _SPACE.sub(" ", unicodedata.normalize("NFKC", subject)).strip().casefold()
    tag = f"[{list_name.casefold()}]" if list_name else None
    # Walk two indices instead of slicing, so a hostile "Re: " * 10**5 costs linear time.
    pos, end = 0, len(s)
    while True:
        while True:
            while end > pos and s[end - 1] == " ":
                end -= 1
            if not s.endswith("(fwd)", pos, end):
                break
            end -= 5
        while pos < end:
            if s[pos] == " ":
                pos += 1
                continue
            # The colon is part of the marker, so "Report: x" is not "Re" + "port: x".
            m = _MARKER.match(s, pos, end) or _BLOB.match(s, pos, end)
            if m is None:
                break
            if m.re is _BLOB and m.end() >= end and s[pos:end].rstrip() != tag:
                break
            pos = m.end()
        if s.startswith("[fwd:", pos, end) and s.endswith("]", pos, end):
            pos, end = pos + 5, end - 1
            continue
        break
    return s[pos:end].strip()[:SUBJECT_KEY_MAX]


@dataclass(frozen=True)
class ThreadDecision:
    """Join ``thread_id`` (None: start a new thread) and fold the ``merge`` threads into it."""

    thread_id: int | None
    merge: tuple[int, ...] = ()


def decide(known: Mapping[str, int],
           subject_candidates: Sequence[tuple[int, datetime, datetime]],
           date: datetime) -> ThreadDecision:
    """Choose the thread for a post.

    ``known`` maps the post's ids found in the index (its own, its references) to their threads;
    ``subject_candidates`` are ``(thread_id, first_post_at, last_post_at)`` of threads with the
    post's subject key (ignored when ``known`` is not empty).
    """
    if known:
        ids = sorted(set(known.values()))
        return ThreadDecision(ids[0], tuple(ids[1:]))
    near = [tid for tid, first, last in subject_candidates
            if first - SUBJECT_WINDOW <= date <= last + SUBJECT_WINDOW]
    return ThreadDecision(min(near) if near else None)


def _clean_ids(message_id: str, references: Iterable[str]) -> list[str]:
    refs = list(dict.fromkeys(r.strip()[:REF_MAX] for r in references if r and r.strip()))
    if len(refs) > MAX_REFERENCES:
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1):]
    own = message_id.strip()[:REF_MAX]
    return list(dict.fromkeys([own, *refs] if own else refs))


def lock_keys(list_id: int, ids: Iterable[str], key: str) -> list[int]:
    """The advisory lock keys of a post's thread keys on PostgreSQL, sorted (so two posts take
    shared ones in the same order): one per id it names, one for a non-empty subject key.
    Stable 64-bit hashes (Python's ``hash`` is salted per process)."""
    named = [("id", ref) for ref in ids] + ([("subject", key)] if key else [])
    return sorted({int.from_bytes(hashlib.blake2b(f"{list_id}\0{kind}\0{value}".encode(),
                                                  digest_size=8).digest(), "big", signed=True)
                   for kind, value in named})


THREAD = Thread.__table__  # type: ignore[attr-defined]
THREAD_REF = ThreadRef.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ThreadRow:
    """A ``thread`` row as ``place`` reads and writes it: core statements, not ORM objects
    (issue 12: loading, then flushing, a ``Thread`` cost more than the statements)."""

    id: int
    list_id: int
    subject: str
    subject_key: str
    first_post_at: datetime
    last_post_at: datetime
    post_count: int
    opening_pk: int | None
    participants: str
    participant_count: int
    # Not a column: the thread's open competition, read with the row because every post that
    # goes out asks (``competition_entries.enter_open``), one query fewer per post.
    open_competition: int | None = None


_COLUMNS = tuple(THREAD.c[f.name] for f in fields(ThreadRow) if f.name != "open_competition")


@dataclass(frozen=True)
class Placement:
    """Where ``place`` put a post: its thread, and what the thread's summary needs to know to be
    updated from this post alone (``thread_summary.after_join``)."""

    thread_id: int
    thread: ThreadRow  # as it is with this post placed (``changes`` included)
    created: bool  # a new thread: this post is its only one
    merged: bool  # other threads were folded into it
    previous_last: datetime | None  # the thread's last_post_at before this post (None: created)
    changes: Mapping[str, Any] = field(default_factory=dict)  # columns not yet written


def assign_thread(session: Session, list_id: int, message_id: str, references: Sequence[str],
                  subject: str, date: datetime, list_name: str | None = None) -> int:
    """Put a post in its thread, updating the index; return the thread id.

    ``message_id`` and ``references`` are bare ids (no angle brackets); ``references`` includes
    In-Reply-To. ``date`` must be timezone-aware. Writes but does not commit.
    """
    return place(session, list_id, message_id, references, subject, date, list_name).thread_id


def place(session: Session, list_id: int, message_id: str, references: Sequence[str],
          subject: str, date: datetime, list_name: str | None = None, *,
          write: bool = True) -> Placement:
    """``assign_thread``, telling also whether the thread was new or merged and its span before.

    ``write=False`` leaves the joined thread's new counts and span in ``Placement.changes`` for
    the caller to write with the summary's (``write_thread``: one UPDATE for all a post changes
    in it); a new thread and the new refs are written all the same (deferred in a write-behind
    scope: on PostgreSQL the new thread's id is taken ahead, ``ids_ahead``; on SQLite its
    INSERT runs at once, for its id).
    Reads and writes are core statements; an ORM ``Thread`` the session holds reads its row again
    (``write_thread``).
    """
    if date.utcoffset() is None:
        raise ValueError("assign_thread needs an aware datetime (use listserv.models.utcnow)")
    # What the caller has pending (a released post's ``accepted_at``) is left to its next
    # flush: these statements read and write only ``thread`` and ``thread_ref`` rows.
    with session.no_autoflush:
        return _place(session, list_id, message_id, references, subject, date.astimezone(UTC),
                      list_name, write=write)


def prefetch(session: Session, list_id: int, message_id: str, references: Sequence[str],
             subject: str, date: datetime, list_name: str | None = None) -> None:
    """Send the read that ``place`` with the same arguments will make (its locks, then the
    index) now, unread, while ``write_behind.rides`` (PostgreSQL, the group committer's
    transactions): it then rides with the post's first read (its sender's standing) instead of
    taking a round trip of its own after it. A post that is not placed after all (held,
    rejected) leaves it unread; its locks are kept to the transaction's end, as a placed post's
    are. Elsewhere it does nothing."""
    if date.utcoffset() is None or not write_behind.rides(session):
        return
    date = date.astimezone(UTC)  # as ``place`` passes it on
    ids, key = _clean_ids(message_id, references), subject_key(subject, list_name)
    only_try = contention.must_try(session)
    with session.no_autoflush:
        _lock(session, list_id, ids, key, only_try)
        later = write_behind.read_later(session, _READ_TRY if only_try else _READ_LOCKED,
                                        _read_params(list_id, ids, key, date))
    per_transaction(session, _PREFETCHED)[
        _prefetch_key(list_id, message_id, references, subject, date, list_name)] = (only_try, later)


def _place(session: Session, list_id: int, message_id: str, references: Sequence[str],
           subject: str, date: datetime, list_name: str | None, *, write: bool) -> Placement:
    ids = _clean_ids(message_id, references)
    key = subject_key(subject, list_name)
    postgres = session.get_bind().dialect.name == "postgresql"
    prefetched = per_transaction(session, _PREFETCHED).pop(
        _prefetch_key(list_id, message_id, references, subject, date, list_name), None) \
        if postgres else None
    first: Sequence[Any] | None = None
    if prefetched is not None:  # its locks and read were sent already (``prefetch``)
        only_try, later = prefetched
        first = later.rows()
    else:
        only_try = postgres and contention.must_try(session)
        if postgres:
            _lock(session, list_id, ids, key, only_try)
    for _ in range(MAX_REREADS):
        placed = _place_once(session, list_id, ids, key, subject, date, postgres=postgres,
                             only_try=only_try, write=write, read_rows=first)
        if placed is not None:
            return placed
        first = None  # read again
    raise contention.Contended(f"the threads of {message_id!r} kept changing")


def _prefetch_key(list_id: int, message_id: str, references: Sequence[str], subject: str,
                  date: datetime, list_name: str | None) -> tuple[Any, ...]:
    """What ``prefetch`` keeps its read under: ``place``'s arguments (``date`` in UTC)."""
    return (list_id, message_id, tuple(references), subject, date, list_name)


def _lock(session: Session, list_id: int, ids: Sequence[str], key: str, only_try: bool) -> None:
    """The advisory locks of a post's thread keys (PostgreSQL). Deferred: in a write-behind
    scope they go in the same round trip as the read after them, which the server runs (with a
    fresh snapshot) only once the locks are granted."""
    if keys := lock_keys(list_id, ids, key):
        write_behind.defer(session, _TRY_LOCKS if only_try else _LOCKS, {"keys": keys})
        contention.note_locks(session)


def _read_params(list_id: int, ids: Sequence[str], key: str, date: datetime) -> dict[str, Any]:
    return {"list_id": list_id, "ids": list(ids), "key": key,
            "latest_first": date + SUBJECT_WINDOW, "earliest_last": date - SUBJECT_WINDOW}


def _place_once(session: Session, list_id: int, ids: list[str], key: str, subject: str,
                date: datetime, *, postgres: bool, only_try: bool,
                write: bool, read_rows: Sequence[Any] | None = None) -> Placement | None:
    """One read of the index (``read_rows``: its rows, read already) and what follows from it;
    None: what it read changed before it was locked (PostgreSQL), read again."""
    known: dict[str, int] = {}
    loaded: dict[int, ThreadRow] = {}
    same_subject: list[ThreadRow] = []
    # The threads of the post's ids, with their refs, and those of its subject (asked for at
    # the same time, though used only when no id is known): one round trip, and no second
    # one to fetch the thread chosen. On PostgreSQL the threads of its ids (all of which it
    # will update: it joins the oldest, merges the others) are locked by the same read.
    read = (_READ_TRY if only_try else _READ_LOCKED) if postgres else _KNOWN_OR_SAME_SUBJECT
    if read_rows is None:
        read_rows = write_behind.rows(session, read, _read_params(list_id, ids, key, date))
    for ref, *columns in read_rows:
        if ref == _BUSY:
            raise contention.Contended("a thread key is locked by another transaction")
        if columns[0] is None:  # its thread, read in the snapshot, is gone (or, trying, busy)
            if only_try:  # the next transaction, waiting, tells which
                raise contention.Contended("a thread is locked by another transaction")
            return None  # merged away since the read began
        thread_row = ThreadRow(*columns)
        loaded[thread_row.id] = thread_row
        if ref is None:
            same_subject.append(thread_row)
        else:
            known[ref] = thread_row.id
    candidates = [] if known else [
        (t.id, t.first_post_at, t.last_post_at) for t in same_subject]

    decision = decide(known, candidates, date)
    previous_last: datetime | None = None
    changes: dict[str, Any] = {}
    if decision.thread_id is None:
        values: dict[str, Any] = {
            "list_id": list_id, "subject": subject, "subject_key": key, "first_post_at": date,
            "last_post_at": date, "post_count": 1, "opening_pk": None, "participants": "[]",
            "participant_count": 0}
        # Its id, for the refs below: taken ahead on PostgreSQL, so the INSERT is deferred.
        new_id = ids_ahead.insert(session, THREAD, values)
        thread = ThreadRow(id=new_id, **values)
    else:
        if postgres and not known:  # chosen by subject: lock it, reading it afresh
            fresh = _lock_threads(session, [decision.thread_id], skip_locked=only_try)
            if not fresh and only_try:  # busy, or gone: the next transaction tells which
                raise contention.Contended("a thread is locked by another transaction")
            if not fresh or not _still_near(fresh[0], key, date):
                return None  # merged or renamed since the read: choose again
            loaded[decision.thread_id] = fresh[0]
        found = loaded.get(decision.thread_id) or _thread(session, decision.thread_id)
        if found is None:  # a thread_ref pointing nowhere: the foreign key forbids it
            raise LookupError(f"thread {decision.thread_id} is in thread_ref but not in thread")
        previous_last = found.last_post_at
        if decision.merge:
            merged = [loaded[i] for i in decision.merge] if postgres else _threads(
                session, decision.merge)
            changes.update(_merge(session, list_id, found, merged))
            found = replace(found, **changes)
        changes["post_count"] = found.post_count + 1
        if changes["post_count"] == 1 or date < found.first_post_at:
            changes.update(first_post_at=date, subject=subject, subject_key=key)
        changes["last_post_at"] = max(found.last_post_at, date)
        thread = replace(found, **changes)

    new_refs = [{"list_id": list_id, "ref": ref, "thread_id": thread.id}
                for ref in ids if ref not in known]
    if new_refs:  # nothing reads them back before the post's row is written: deferred
        write_behind.defer(session, _INSERT_REF, new_refs)
    if write and changes:
        write_thread(session, thread.id, changes)
        changes = {}
    return Placement(thread.id, thread, created=decision.thread_id is None,
                     merged=bool(decision.merge), previous_last=previous_last, changes=changes)


def _still_near(thread: ThreadRow, key: str, date: datetime) -> bool:
    """Whether a thread chosen by subject still is one (``decide``'s rule 3) as locked."""
    return thread.subject_key == key and bool(
        decide({}, [(thread.id, thread.first_post_at, thread.last_post_at)], date).thread_id)


def _lock_threads(session: Session, ids: Sequence[int], *, skip_locked: bool) -> list[ThreadRow]:
    """The rows of ``ids`` that still exist, locked until the transaction ends, in id order
    (two posts never lock two threads in opposite orders); ``skip_locked``: without waiting,
    leaving out any another transaction holds."""
    statement = _LOCK_SKIP if skip_locked else _LOCK_WAIT
    return [ThreadRow(*r) for r in write_behind.rows(session, statement, {"ids": sorted(ids)})]


def write_thread(session: Session, thread_id: int, values: Mapping[str, Any]) -> None:
    """Write ``values`` to the thread's row with one core UPDATE; no flush. A ``Thread`` the
    session holds for it has those attributes expired, so it reads them again from the row
    (even after a savepoint's rollback) and never flushes stale ones."""
    if not values:
        return
    with session.no_autoflush:  # deferred in a write-behind scope: nothing reads its result
        write_behind.defer(session, _UPDATE_THREAD, {"thread_key": thread_id, **values})
    held = session.identity_map.get(identity_key(Thread, thread_id))
    if held is not None:
        session.expire(held, list(values))


def _thread(session: Session, thread_id: int) -> ThreadRow | None:
    found = _threads(session, [thread_id])
    return found[0] if found else None


def _threads(session: Session, ids: Sequence[int]) -> list[ThreadRow]:
    return [ThreadRow(*r) for r in session.execute(_BY_ID, {"ids": list(ids)})]


# Built once: constructing a statement costs more Python time than running it.
COMPETITION = Competition.__table__  # type: ignore[attr-defined]
_OPEN_COMPETITION = core_select(COMPETITION.c.id).where(
    COMPETITION.c.thread_id == THREAD.c.id,
    COMPETITION.c.state == CompetitionState.OPEN.value).limit(1).scalar_subquery()
_KNOWN = (core_select(THREAD_REF.c.ref, *_COLUMNS, _OPEN_COMPETITION)
          .join_from(THREAD_REF, THREAD, THREAD.c.id == THREAD_REF.c.thread_id)
          .where(THREAD_REF.c.list_id == bindparam("list_id"),
                 THREAD_REF.c.ref.in_(bindparam("ids", expanding=True))))
_SAME_SUBJECT = (core_select(cast(null(), THREAD_REF.c.ref.type), *_COLUMNS, _OPEN_COMPETITION)
                 .where(THREAD.c.list_id == bindparam("list_id"),
                        bindparam("key") != "",
                        THREAD.c.subject_key == bindparam("key"),
                        THREAD.c.first_post_at <= bindparam("latest_first", type_=UTCDateTime()),
                        THREAD.c.last_post_at >= bindparam("earliest_last", type_=UTCDateTime())))
_KNOWN_OR_SAME_SUBJECT = union_all(_KNOWN, _SAME_SUBJECT)  # a ref of None: by subject


def _known_locked(skip_locked: bool) -> Any:
    """``_KNOWN`` for PostgreSQL: the threads locked in id order and read as locked (their
    latest version, not the snapshot's); a ref whose thread is gone (or, ``skip_locked``,
    held by another transaction) comes with NULL columns."""
    refs = (core_select(THREAD_REF.c.ref, THREAD_REF.c.thread_id)
            .where(THREAD_REF.c.list_id == bindparam("list_id"),
                   THREAD_REF.c.ref.in_(bindparam("ids", expanding=True))).cte("refs"))
    locked = (core_select(*_COLUMNS, _OPEN_COMPETITION.label("open_competition"))
              .where(THREAD.c.id.in_(core_select(refs.c.thread_id)))
              .order_by(THREAD.c.id)
              .with_for_update(of=THREAD, skip_locked=skip_locked).cte("locked"))
    return (core_select(refs.c.ref, *(locked.c[c.name] for c in _COLUMNS),
                        locked.c.open_competition)
            .select_from(refs.outerjoin(locked, locked.c.id == refs.c.thread_id)))
# The advisory locks of a post's thread keys, in the order given (sorted). The trying form
# leaves its verdict in a setting of the transaction, which the read after it reports as a
# row whose ref is _BUSY: the verdict so rides with the read, no round trip of its own (a
# statement of its own, though: the read's snapshot must be taken once the locks are held).
_KEYS = "unnest(CAST(:keys AS bigint[])) AS k"
_LOCKS = text(f"SELECT pg_advisory_xact_lock(k) FROM {_KEYS}")
_BUSY_SETTING = "commonroom.threads_busy"
_TRY_LOCKS = text(f"SELECT set_config('{_BUSY_SETTING}', CASE WHEN "
                  f"coalesce(bool_and(pg_try_advisory_xact_lock(k)), true) THEN '' ELSE 'busy' "
                  f"END, true) FROM {_KEYS}")
_BUSY = " busy"  # refs are stripped: no ref starts with a space
_READ_LOCKED = union_all(_known_locked(False), _SAME_SUBJECT)
_READ_TRY = union_all(_known_locked(True), _SAME_SUBJECT, core_select(
    cast(literal(_BUSY), THREAD_REF.c.ref.type), *(cast(null(), c.type) for c in _COLUMNS),
    cast(null(), COMPETITION.c.id.type)).where(text(f"current_setting('{_BUSY_SETTING}', true) = 'busy'")))
_BY_ID = core_select(*_COLUMNS, _OPEN_COMPETITION).where(THREAD.c.id.in_(bindparam("ids", expanding=True)))
_LOCK_WAIT = _BY_ID.order_by(THREAD.c.id).with_for_update(of=THREAD)
_LOCK_SKIP = _BY_ID.order_by(THREAD.c.id).with_for_update(of=THREAD, skip_locked=True)
_UPDATE_THREAD = update(THREAD).where(THREAD.c.id == bindparam("thread_key"))
_INSERT_REF = insert(THREAD_REF)


def _merge(session: Session, list_id: int, into: ThreadRow,
           merged: Sequence[ThreadRow]) -> dict[str, Any]:
    """Fold the ``merged`` threads into ``into``: its new totals, span and earliest subject
    (returned, for the caller to write); the others' refs and posts moved, their rows deleted."""
    merge = [t.id for t in merged]
    total, first, last = into.post_count, into.first_post_at, into.last_post_at
    subject, key = into.subject, into.subject_key
    for other in sorted(merged, key=lambda t: (t.first_post_at, t.id)):
        total += other.post_count
        if other.first_post_at < first:
            first, subject, key = other.first_post_at, other.subject, other.subject_key
        last = max(last, other.last_post_at)
    session.execute(update(ThreadRef)
                    .where(col(ThreadRef.list_id) == list_id, col(ThreadRef.thread_id).in_(merge))
                    .values(thread_id=into.id))
    session.execute(update(Message).where(col(Message.thread_id).in_(merge))
                    .values(thread_id=into.id))
    session.execute(delete(Thread).where(col(Thread.id).in_(merge)))
    return {"post_count": total, "first_post_at": first, "subject": subject,
            "subject_key": key, "last_post_at": last}
