"""The outbox worker in a process of its own (``[server] delivery_process = true``).

Python runs one thread at a time per process. In one process, delivering (rendering copies,
the SMTP exchanges with the smarthost, claims and write-backs) shares that one thread with
accepting and handling, so a busy server delivers only as fast as its one core allows. With
the worker in a child process, the App accepts and handles on one core and the child sends on
another.

Invariants:
- The child runs the same ``OutboxWorker`` as ``serve`` does in process (``make_worker``), so
  claims, leases, write-backs, bounces and notices-before-bulk are the worker's, unchanged; the
  App runs no worker of its own (on SQLite one worker at a time owns every ``sending`` row).
- A wake (new rows committed) is one byte on a pipe, written without blocking from any thread;
  the child wakes its worker when it reads it. A byte lost (pipe full, child restarting) costs
  at most the worker's poll interval: the rows are in the store.
- The child sees the parent stop (or die) as EOF on that pipe: it stops its worker, which
  finishes the sends in flight and gives back what it claimed, then exits.
- The parent starts the child, waits until its worker runs, and starts it again if it dies
  (after a wait that grows while it keeps dying young, ``backoff.next_restart``), after the
  dead one has been reaped (SQLite: the new worker then makes the dead one's
  ``sending`` rows due at once; PostgreSQL: the dead one's lease is gone with its session).
- The child tells the parent its worker's ``counts`` when they change (at most once a
  second), for /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from listserv.config import Config
from listserv.door import Restarts, await_first_word, run_child
from listserv.outbox import OutboxWorker
from listserv.store import Store, StoreSettings
from listserv.transports import MaildirTransport, SmtpTransport, Transport

if TYPE_CHECKING:
    from listserv.dmarc import DmarcResolver

log = logging.getLogger("commonroom.courier")

START_TIMEOUT = 60.0  # seconds for the child to import, connect and start its worker
COUNTS_INTERVAL = 1.0  # seconds between the child's reports of its counts
STOP_TIMEOUT = 30.0  # the worker's grace for sends in flight is 10 s


def transport_factory(cfg: Config) -> Callable[[], Transport]:
    smarthost = cfg.smarthost
    if smarthost is None:
        path = cfg.maildir_path
        return lambda: MaildirTransport(path)
    host, port = smarthost
    return lambda: SmtpTransport(host, port)


async def make_worker(cfg: Config, store: Store,
                      resolver: DmarcResolver | None = None) -> OutboxWorker:
    """The outbox worker ``serve`` runs (in process, or in the child): renderers, DKIM
    signing, bounce scoring. Not started. ``ConfigError`` if the DKIM key cannot be read.
    ``resolver``: the SMTP door's in the same process, so both share its cache."""
    from digests.send import DigestRenderer  # the entry point may use every package
    from listserv import smtp_bounces
    from listserv.delivery import PostRenderer
    from listserv.dkim import load_signer
    from listserv.dmarc import lookup_from_thread, resolver_for

    signer = load_signer(cfg)
    # Posts whose DMARC lookup failed on arrival are looked up again at delivery, by the
    # renderer (in a worker thread) through this loop's resolver and cache.
    lookup = lookup_from_thread(resolver or resolver_for(cfg), asyncio.get_running_loop(),
                                cfg.delivery.dmarc_timeout * 3)
    renderer = await asyncio.to_thread(partial(PostRenderer, dmarc=lookup), store, cfg)
    digest_renderer = await asyncio.to_thread(DigestRenderer, store, cfg)
    return OutboxWorker(store, transport_factory(cfg), renderer,
                        connections=cfg.delivery.connections,
                        give_up_after=cfg.give_up_after,
                        keep_sent=timedelta(days=cfg.delivery.keep_sent_days),
                        render_digest=digest_renderer, sign=signer,
                        on_undelivered=partial(smtp_bounces.score, cfg))


@dataclass(frozen=True)
class CourierSpec:
    cfg: Config
    store: StoreSettings  # the parent's store's, not defaults from ``cfg``
    log_level: int


def child_main(spec: CourierSpec, wake: Connection, status: Connection) -> None:
    """The child process: run the outbox worker, woken by each byte read from ``wake``, until
    ``wake`` reads EOF (the parent closed it, or died) or SIGTERM. ``status`` carries
    ("ready", worker id), ("counts", {...}) and ("error", why) to the parent."""
    run_child(_run(spec, wake, status), status, spec.log_level)


async def _run(spec: CourierSpec, wake: Connection, status: Connection) -> None:
    from listserv.heap import freeze_startup_heap

    store = spec.store.open()
    store.share_write_lock()  # SQLite: take turns with the App's writers (and its SMTP door's)
    worker = await make_worker(spec.cfg, store)
    await worker.start()
    freeze_startup_heap()  # as serve's process does: full collections skip the start-up heap
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    fd = wake.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            worker.wake()
        else:  # EOF: the parent is stopping us, or gone
            loop.remove_reader(fd)
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    status.send(("ready", worker.worker_id))
    reporter = asyncio.create_task(_report_counts(worker, status))
    try:
        await stop.wait()
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await worker.stop()  # in-flight sends finish, the rest is given back
        with contextlib.suppress(OSError):
            status.send(("counts", dict(worker.counts)))
        store.dispose()


async def _report_counts(worker: OutboxWorker, status: Connection) -> None:
    last: dict[str, int] = {}
    while True:
        await asyncio.sleep(COUNTS_INTERVAL)
        now = dict(worker.counts)
        if now != last:
            try:
                status.send(("counts", now))
            except OSError:  # the parent is gone: the wake pipe's EOF stops us
                return
            last = now


class CourierProcess(Restarts):
    """The parent's handle on the child: start, wake, watch, restart, stop."""

    what = "the delivery process"

    def __init__(self, cfg: Config, store: StoreSettings) -> None:
        """``store``: the App's store's settings; the child opens its store with them."""
        self.cfg = cfg
        self.store = store
        self._ctx = multiprocessing.get_context("spawn")  # no threads or loops copied by fork
        self._process: Any = None
        self._status: Connection | None = None
        self._wake_fd: int | None = None
        self._wake_conn: Connection | None = None
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None
        self._counts: Counter[str] = Counter()  # the current child's, as last reported
        self._past: Counter[str] = Counter()  # the children's before it
        self.worker_id = 0
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def counts(self) -> Mapping[str, int]:
        """Outcomes written since ``serve`` started, by every child so far."""
        return self._past + self._counts

    def wake(self) -> None:
        """New rows are committed: the child claims now rather than at its next poll.
        Thread-safe and never blocks."""
        fd = self._wake_fd
        if fd is None:
            return
        with contextlib.suppress(OSError):  # full (a wake is pending anyway), or child gone
            os.write(fd, b"w")

    def spec(self) -> CourierSpec:
        """What the child is started with."""
        return CourierSpec(self.cfg, self.store, logging.getLogger().getEffectiveLevel())

    async def start(self) -> None:
        """Start the child and wait until its worker runs. RuntimeError with its reason."""
        self._stopping = False
        wake_read, wake_write = self._ctx.Pipe(duplex=False)
        status_read, status_write = self._ctx.Pipe(duplex=False)
        spec = self.spec()
        process = self._ctx.Process(target=child_main, args=(spec, wake_read, status_write),
                                    name="commonroom-delivery", daemon=True)
        process.start()
        wake_read.close()
        status_write.close()
        first = await await_first_word(status_read, process, "the delivery process",
                                       START_TIMEOUT, wake_write)
        if first[0] != "ready":
            raise RuntimeError(str(first[1]))
        self.worker_id = int(first[1])
        self._started_at = time.monotonic()
        self._counts = Counter()
        self._process, self._status = process, status_read
        self._wake_conn, self._wake_fd = wake_write, wake_write.fileno()
        os.set_blocking(self._wake_fd, False)
        asyncio.get_running_loop().add_reader(status_read.fileno(), self._readable)
        self.wake()  # rows committed while it started

    def _readable(self) -> None:
        conn = self._status
        assert conn is not None
        try:
            while conn.poll():
                self._heard(conn.recv())
        except (EOFError, OSError):
            self._gone()

    def _heard(self, word: tuple[str, Any]) -> None:
        kind, value = word
        if kind == "counts":
            self._counts = Counter(value)
        elif kind == "error":
            log.error("the delivery process: %s", value)

    def _close_pipes(self) -> None:
        if self._status is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._status.fileno())
            self._status.close()
            self._status = None
        self._wake_fd = None
        if self._wake_conn is not None:
            self._wake_conn.close()  # EOF in the child: it stops its worker and exits
            self._wake_conn = None

    def _gone(self) -> None:
        self._close_pipes()
        if self._stopping:
            return
        self._restart_soon()

    async def _reap(self) -> None:
        if self._process is not None:
            # Reaped before its successor starts: the successor's recovery takes its rows.
            await asyncio.to_thread(self._process.join, STOP_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                await asyncio.to_thread(self._process.join, 5)
            self._past += self._counts
            self._counts = Counter()

    async def stop(self) -> None:
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        if self._process is None:
            return
        status = self._status
        if status is not None:
            asyncio.get_running_loop().remove_reader(status.fileno())
        if self._wake_conn is not None:
            self._wake_conn.close()  # EOF in the child: it finishes and exits
            self._wake_conn, self._wake_fd = None, None
        await asyncio.to_thread(self._process.join, STOP_TIMEOUT)
        if self._process.is_alive():
            log.error("the delivery process did not stop in %s s; terminating it", STOP_TIMEOUT)
            self._process.terminate()
            await asyncio.to_thread(self._process.join, 5)
        if status is not None:
            with contextlib.suppress(EOFError, OSError):
                while status.poll():
                    self._heard(status.recv())  # its last counts
            status.close()
            self._status = None
        self._process = None

