"""Lock contention between writers on PostgreSQL: when a unit of work steps aside.

Several writer threads (``group_commit``) handle posts of one list at once on PostgreSQL, and
threading locks what a post touches (``threads``: advisory locks per thread key, the rows of
the threads it updates). A writer's transaction keeps the locks of every post of its group
until its COMMIT, so two writers waiting for each other across posts would deadlock (and
PostgreSQL's detector only looks after ``deadlock_timeout``, a second). So:

- The first unit of a transaction that takes such locks may wait for them: it holds none.
- A later unit of the same transaction only tries them. If one is busy it raises
  ``Contended``; its savepoint is rolled back, the writer commits what came before it and
  runs it first in its next transaction, where it may wait. Only a caller that has said so
  (``allow_stepping_aside``: the inbound queue's handling, run by the group committer) is
  asked to step aside; any other transaction waits, as before.
- A race the locks cannot rule out (a deadlock with a transaction outside this scheme, a
  thread index changed under a post) surfaces as the database's error; ``is_race`` tells it
  apart from a bug, so the post is run again rather than shunted as broken mail.

Pure but for ``session.info``; SQLite never gets here (its write lock serialises writers).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from listserv.store import per_transaction

_ALLOWED = "commonroom_may_step_aside"  # session.info: the caller handles Contended
_HELD = "commonroom_contention"  # per transaction: {"locks": True} once a unit took locks

# SQLSTATEs of a lost race: deadlock_detected, serialization_failure, lock_not_available.
_RACE_STATES = frozenset({"40P01", "40001", "55P03"})
# Constraints that only a concurrent change of the thread index can break (the post's own
# refs are locked, so a duplicate or a vanished thread means another post moved them).
_RACE_CONSTRAINTS = frozenset({"thread_ref_pkey", "thread_ref_thread_id_fkey",
                               "message_thread_id_fkey"})


class Contended(Exception):
    """A lock this unit needs is held by another transaction while this one holds locks of
    earlier units: roll the unit back and run it first in a new transaction."""


class Gone(Exception):
    """The queued row this unit handles was taken by another process, or is gone, as its lock
    read (``write_behind.read_later``) said once it came back: nothing of the unit is kept."""


def allow_stepping_aside(session: Session) -> None:
    """This session's units may raise ``Contended`` (their runner runs them again)."""
    session.info[_ALLOWED] = True


def may_step_aside(session: Session) -> bool:
    """Whether this session's units may raise ``Contended``."""
    return bool(session.info.get(_ALLOWED))


def must_try(session: Session) -> bool:
    """Whether a unit should only try its locks: it may step aside, and the transaction holds
    locks of an earlier unit already (waiting then could close a cycle)."""
    return may_step_aside(session) and bool(per_transaction(session, _HELD))


def note_locks(session: Session) -> None:
    """The current transaction holds contended locks from now on (until it ends)."""
    held = per_transaction(session, _HELD)
    held["locks"] = True


def is_race(exc: BaseException) -> bool:
    """Whether ``exc`` (SQLAlchemy's or the driver's) is a lost race, worth running again."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    if state in _RACE_STATES:
        return True
    if state in ("23505", "23503"):  # unique_violation, foreign_key_violation
        diag = getattr(orig, "diag", None)
        return getattr(diag, "constraint_name", None) in _RACE_CONSTRAINTS
    return False
