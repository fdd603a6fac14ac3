"""Asynchronous commit, on PostgreSQL, for transactions nobody is answered on.

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

Only ``GroupCommitter`` sets it, for a group of units submitted with ``durable=False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlmodel import Session

from listserv import write_behind

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
