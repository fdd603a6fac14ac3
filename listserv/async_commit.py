"""Asynchronous commit (PostgreSQL) and lazy commit (SQLite), for transactions nobody is
answered on.

A COMMIT waits for the server to flush its WAL to disk (fdatasync): the one writer that
handles posts waited 1.7-3.2 ms (p50) for a synchronous COMMIT and 0.24-0.28 ms for an
asynchronous one in the same runs (bench/README.md, "Less waiting for the handling writer on
PostgreSQL").
A group of the inbound pipeline's units (a queued message handled, a failed handling counted)
answers nobody, so it commits with ``synchronous_commit = off``: the server acknowledges the
COMMIT at once and its WAL writer flushes it within ~3 × ``wal_writer_delay`` (600 ms by
default). The SMTP door's units stay synchronous: its 250 means committed and durable.

Why that is safe. A crash of the server within that window loses such a transaction whole,
never part of it (PostgreSQL stays consistent); the handling's delete of its inbound row is
lost with it, so the message is handled again at the next start: nothing accepted is lost. It
remains to show that nothing outside the store acts on the handling's rows before they are
durable. Every path that does first commits a write of its own that depends on those rows, and
commits it synchronously; a synchronous commit waits for the WAL to be flushed up to its own
commit record, which comes after the handling's (it saw the handling's rows, so the handling's
commit record was already written to the WAL: one WAL, also for other processes):
- copies (posts, notices, digests, moderators' mail) leave only once the outbox worker's claim
  (``OutboxWorker._claim``: an UPDATE … RETURNING, in ``serve`` or the delivery process) has
  committed; a claim that takes no row writes nothing, but then nothing is sent either;
- the Discord relay writes a row into Discord only after ``discord_relay.claim`` (a conditional
  UPDATE) committed (``bot/relay.py``);
- a moderator's decision on a held post, a digest, a person's confirmation: each is a write
  transaction of its own, synchronous, before any mail it causes (which goes by the outbox).
What it allows: a reader (the web archive, search, a bot command, /metrics) may show a post
in the window before it is durable; after such a crash the post comes back once handled again,
perhaps under another id. ``after_commit`` work of the handling (the outbox's wake-up, logs)
may run for a transaction that is then lost; the handling's second run does it again.

SQLite's twin is ``PRAGMA synchronous=NORMAL`` for the transaction (``store.LAZY_COMMIT``):
in WAL mode its COMMIT writes the transaction's frames to the WAL but does not fdatasync it
(each FULL commit was one fdatasync, ~2,000 in a 2,000-post ingest run, every one made while
holding the write lock all three processes wait for). The frames are in the kernel's page
cache at once, so a process crash loses nothing; only a power loss or an OS crash can, and it
loses a suffix of commits, never part of one (the WAL's frame checksums are chained). The next
FULL commit's fdatasync of the same WAL file makes every earlier frame durable, whichever
process or connection wrote it; so does a checkpoint, which syncs the WAL before copying it
into the database. The argument above carries over word for word: one WAL for every process,
and each path that acts outside the store on a handling's rows first commits a write that saw
them, FULL (the outbox claim, ``OutboxWorker._claim``; the relay's claim; a moderator's
decision), whose fdatasync covers the handling's frames, written before it.

The delivery process's write-back (``OutboxWorker._write``) commits lazily too, on SQLite.
What it writes acts on nothing outside the store before a later FULL commit: notices that
scoring queues leave only by a claim, which is FULL. A power loss that takes a write-back with
it leaves that write-back's rows ``sending`` as claimed (the claim was FULL), so recovery at
the next start sends them again: exactly what a crash between the smarthost's 250 and the
write-back does today (delivery is at-least-once), a retry comes due at once instead of after
its back-off, and a refusal's bounce and its score are lost together with its outcome, never
apart (one transaction), so the copy is refused and counted again, once.

Only ``GroupCommitter`` (a group of units submitted with ``durable=False``) and the write-back
set it; a store opened ``synchronous=NORMAL`` commits NORMAL throughout anyway, and nothing
more durable is ever made lazy by this (``store.commit_sync``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlmodel import Session

from listserv import write_behind
from listserv.store import LAZY_COMMIT

# set_config(..., true) is SET LOCAL: for this transaction only, back to the server's default
# after it. A SELECT, so psycopg may prepare it as any other statement.
_OFF = text("SELECT set_config('synchronous_commit', 'off', true)")


def lazy(durable: Iterable[bool]) -> bool:
    """Whether a transaction holding units of these durabilities may commit asynchronously:
    only if it holds some, and none whose caller answers someone on its commit. Pure."""
    flags = list(durable)
    return bool(flags) and not any(flags)


@contextmanager
def transaction(session: Session, lazily: bool) -> Iterator[None]:
    """Within ``session``'s transaction, make its COMMIT asynchronous if ``lazily`` (and the
    store is PostgreSQL). The setting rides with the transaction's first statement
    (``write_behind``): no round trip of its own."""
    if not lazily or session.connection().dialect.name != "postgresql":
        yield
        return
    with write_behind.scope(session):
        write_behind.defer(session, _OFF, {})
        yield


def before_begin(conn: Connection, lazily: bool) -> None:
    """Before ``conn``'s transaction begins: on SQLite, make its COMMIT lazy if ``lazily``
    (the store sets ``synchronous`` as it begins: SQLite refuses to change it inside a
    transaction). PostgreSQL's is set inside the transaction, by ``transaction``."""
    if lazily and conn.dialect.name == "sqlite":
        conn.execution_options(**{LAZY_COMMIT: True})
