"""The SMTP door: an aiosmtpd handler with two hooks that call the list server's functions.

Invariants:
- RCPT: an address that is not one of a list's is refused with 550 5.1.1 before any data is
  sent; aiosmtpd itself refuses messages over the size limit with 552.
- DATA: "250" is answered only after the commit that holds the message in the inbound queue
  (``inbound_queue.enqueue_many`` through ``group_commit``: the messages of sessions that
  finish DATA while the writer is busy share one INSERT and one transaction, ``Enqueuer``); the
  pipeline handles it from there, urgent ones first. A session that goes away before the writer
  takes its message leaves it unwritten (its sender still has it).
  If the store cannot be written, the answer is 451 and the sending MTA keeps the message and
  retries.
- The event loop never blocks on the database: reads run in worker threads, writes in the
  group committer's writer thread(s), first come first served (a member's post or a person's
  request ahead of posts from non-members).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlmodel import Session

from listserv import accept, inbound_queue, lists
from listserv.addresses import Destination, Kind, parse_recipient
from listserv.config import Config
from listserv.dmarc import DmarcResolver
from listserv.group_commit import MAX_GROUP, GroupCommitter
from listserv.store import Store

log = logging.getLogger("commonroom.smtp")


class ListNames:
    """The names of the lists, remembered for ``ttl`` seconds so that RCPT costs no query: a
    name found is trusted that long (a list deleted meanwhile is caught when the message is
    handled), a name not found is always looked up again (a list created a moment ago)."""

    def __init__(self, store: Store, *, ttl: float = 5.0) -> None:
        self.store, self.ttl = store, ttl
        self._names: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def remembered(self, name: str) -> bool:
        return name in self._names and time.monotonic() - self._read_at < self.ttl

    def read(self) -> None:
        """Read every name again (blocking: in a worker thread)."""
        with self.store.read_session() as s:
            names = frozenset(lists.all_names(s))
        self._names, self._read_at = names, time.monotonic()


@dataclass(eq=False)
class _Batch:
    """Accepted messages of one urgency that go to the store in one committer unit."""

    urgent: bool
    items: list[tuple[accept.Prepared, asyncio.Future[int]]] = field(default_factory=list)
    # What the writer took (from then on nobody joins, and a session that goes away no longer
    # takes its message out); set again by each run of the unit, which writes the same.
    taken: list[tuple[accept.Prepared, asyncio.Future[int]]] | None = None


class Enqueuer:
    """Hands accepted messages to the group committer: those that arrive while the writer is
    busy go in one unit, written by one multi-row INSERT (``inbound_queue.enqueue_many``),
    rather than one unit and one INSERT each (the CPU of the accepting path, bench/README).
    Each message's ``put`` returns after the commit that holds its row, as before; a batch that
    fails is tried again one message at a time, so only a message that fails alone fails."""

    def __init__(self, committer: GroupCommitter, *, max_batch: int = MAX_GROUP) -> None:
        self.committer = committer
        self.max_batch = max_batch
        self._lock = threading.Lock()  # the loop adds to a batch, a writer thread takes it
        self._open: dict[bool, _Batch | None] = {True: None, False: None}
        self.waiting = 0  # messages handed over and not yet answered (tests)

    async def put(self, prepared: accept.Prepared, urgent: bool) -> int:
        """Store ``prepared``; its row id once the commit that holds it is done."""
        loop = asyncio.get_running_loop()
        item = (prepared, loop.create_future())
        with self._lock:
            batch = self._open[urgent]
            fresh = batch is None or len(batch.items) >= self.max_batch
            if fresh:
                batch = self._open[urgent] = _Batch(urgent)
            assert batch is not None
            batch.items.append(item)
        if fresh:
            self._submit(batch, loop)
        self.waiting += 1
        try:
            return int(await item[1])
        except asyncio.CancelledError:
            # The session went away before the writer took its message: it is not written
            # (no 250 was sent, the sender still has it), as with a unit of its own.
            with self._lock:
                if batch.taken is None:
                    batch.items.remove(item)
            raise
        finally:
            self.waiting -= 1

    def _submit(self, batch: _Batch, loop: asyncio.AbstractEventLoop) -> None:
        try:
            done = self.committer.submit(partial(self._write, batch), urgent=batch.urgent,
                                         own_savepoints=True)  # one INSERT: all or nothing
        except Exception as e:  # the committer is stopped: nobody of the batch is answered 250
            self._resolve(batch, e)
            return

        def finished(f: Future[list[int]]) -> None:  # in the writer thread, after the commit
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to answer
                loop.call_soon_threadsafe(self._resolve, batch, f)
        done.add_done_callback(finished)

    def _write(self, batch: _Batch, session: Session) -> list[int]:
        """The unit (in a writer thread): take the batch, write its rows."""
        with self._lock:
            if batch.taken is None:
                batch.taken = list(batch.items)
                if self._open[batch.urgent] is batch:
                    self._open[batch.urgent] = None
        return inbound_queue.enqueue_many(session, [(p, batch.urgent) for p, _ in batch.taken])

    def _resolve(self, batch: _Batch, done: Future[list[int]] | BaseException) -> None:
        """On the loop: answer the batch's messages."""
        with self._lock:
            if batch.taken is None:  # the unit never ran (the committer failed or stopped)
                batch.taken = list(batch.items)
                if self._open[batch.urgent] is batch:
                    self._open[batch.urgent] = None
        error = done if isinstance(done, BaseException) else done.exception()
        if error is None:
            assert isinstance(done, Future)
            for (_, fut), row_id in zip(batch.taken, done.result(), strict=True):
                if not fut.done():
                    fut.set_result(row_id)
            return
        if len(batch.taken) > 1 and isinstance(done, Future):
            # One message the database refuses must not cost the others a 451: each alone.
            loop = asyncio.get_running_loop()
            for item in batch.taken:
                self._submit(_Batch(batch.urgent, [item], [item]), loop)
            return
        for _, fut in batch.taken:
            if not fut.done():
                fut.set_exception(error)


class ListHandler:
    def __init__(self, store: Store, cfg: Config, resolver: DmarcResolver | None,
                 on_stored: Callable[[int, bool, accept.Prepared], None],
                 committer: GroupCommitter) -> None:
        """``on_stored(row_id, urgent, prepared)``: called on the event loop after the commit
        that holds an accepted message's row (the pipeline's ``accepted``)."""
        self.store = store
        self.committer = committer
        self.enqueuer = Enqueuer(committer)
        self.members = accept.MemberHint(store)
        self.names = ListNames(store)
        self.cfg = cfg
        self.resolver = resolver
        self.on_stored = on_stored

    def _resolve(self, address: str) -> Destination | None:
        # Only reads: no write lock on SQLite, so RCPT never queues behind a DATA's commit.
        self.names.read()
        return parse_recipient(address, self.cfg.server.domain, self.names.remembered)

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        try:
            # A list's address seen in the last seconds is answered on the loop, no thread.
            dest = parse_recipient(address, self.cfg.server.domain, self.names.remembered)
            if dest is None:
                dest = await asyncio.to_thread(self._resolve, address)
        except Exception:
            log.exception("RCPT lookup failed for %s", address, extra={"rcpt": address})
            return "451 4.3.0 Temporary failure looking up the list; try again later"
        if dest is None:
            return f"550 5.1.1 <{address}>: no such list at {self.cfg.server.domain}"
        # Defining handle_RCPT switches off aiosmtpd's default: we record the recipient.
        envelope.rcpt_tos.append(address)
        destinations: list[Destination] = getattr(envelope, "destinations", [])
        destinations.append(dest)
        envelope.destinations = destinations  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    async def _prepare(self, delivery: accept.Delivery) -> tuple[accept.Prepared, bool]:
        # Parsing reads the header block only (~0.1 ms for a post): cheaper on the loop than a
        # hop to a thread and back.
        prepared = accept.prepare(self.cfg, delivery)
        # Urgency orders the pipeline; the membership it needs is a read, remembered for a
        # minute by MemberHint, so only a sender not seen lately costs a thread.
        try:
            return prepared, accept.urgent(prepared, self.members.remembered)
        except KeyError:
            return prepared, await asyncio.to_thread(accept.urgent, prepared, self.members)

    async def _dmarc(self, author: str, destinations: list[Destination]) -> str:
        if self.resolver is None or not any(d.kind is Kind.POST for d in destinations):
            return ""
        if "@" not in author:
            return ""
        policy = await self.resolver.policy(author.rsplit("@", 1)[1])
        return policy.value

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        destinations: list[Destination] = getattr(envelope, "destinations", [])
        # The null reverse-path (MAIL FROM:<>) marks bounces and other automatic mail.
        envelope_from = (envelope.mail_from or "").strip().strip("<>")
        delivery = accept.Delivery(envelope_from=envelope_from,
                                    destinations=tuple(destinations), raw=raw)
        try:
            # Parsed once, here, off the writer's thread; the DMARC lookup uses the same parse.
            prepared, urgent = await self._prepare(delivery)
            policy = await self._dmarc(prepared.parsed.from_address or "", destinations)
            if policy:
                prepared = replace(prepared, delivery=replace(delivery, dmarc_policy=policy))
            row_id = await self.enqueuer.put(prepared, urgent)
        except Exception:
            log.exception("could not store a message from %s", envelope.mail_from,
                          extra={"envelope_from": envelope.mail_from})
            return "451 4.3.0 Could not store the message; try again later"
        self.on_stored(row_id, urgent, prepared)
        return "250 2.0.0 Message accepted"


# "<local@domain>" with both parts dot-atoms of ASCII atext (RFC 5322 3.2.3): what nearly
# every MTA sends in MAIL and RCPT, before any parameters.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN_PATH = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>")


def plain_path(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a MAIL/RCPT argument that is a plain ``_PLAIN_PATH`` followed
    by nothing or by whitespace and parameters, as aiosmtpd's ``_getaddr`` (the email package's
    address parser, which skips the whitespace as ``str.lstrip`` does) reads it; None for any
    other form, which is left to that parser. Pure."""
    m = _PLAIN_PATH.match(arg)
    if m is None:
        return None
    tail = arg[m.end():]
    if tail[:1] not in ("", " ", "\t"):
        return None
    params = tail.lstrip()
    return None if params.startswith("(") else (m.group(1), params)  # a comment: the parser's


class ListSMTP(SMTP):
    # RFC 5321 caps lines at 1,000 octets, but real mail (and what an MTA in front relays)
    # breaks that; refusing it would lose mail, so only absurd lines are refused.
    line_length_limit = 1 << 20

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # The email package's parser cost a tenth of the SMTP process's CPU a post (py-spy of
        # bench/ingest.py --smtp-process); a plain path is read without it, to the same result
        # (tests/test_smtp.py compares them), anything else as aiosmtpd reads it.
        plain = plain_path(arg)
        if plain is None:
            return super()._getaddr(arg)
        local = plain[0].rpartition("@")[0]
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return plain


def smtp_factory(handler: ListHandler, cfg: Config) -> Callable[[], Any]:
    def make() -> SMTP:
        return ListSMTP(handler, data_size_limit=cfg.server.max_message_bytes,
                    enable_SMTPUTF8=True, hostname=cfg.server.domain, ident="Commonroom")
    return make
