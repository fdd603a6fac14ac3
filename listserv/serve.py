"""The process entry point: start the doors the configuration asks for, in one event loop.

Now: the SMTP server, the outbox worker (delivery; in a child process with ``[server]
delivery_process``, listserv/courier.py), the scheduler (digests/schedule.py:
digests and held-post reminders, run by one process), the web pages (listserv/web/, uvicorn
in this loop), the Discord bot (bot/) when ``[discord] token`` is set, in the one process
of those sharing the store that holds its lease (bot/leased.py), and on PostgreSQL the search
indexer (listserv/search_behind.py: new posts' tsvectors, while the pipeline is idle). ``App``
is also what the tests start, on loopback.

Invariants:
- Start-up fails fast, with a message saying what to do, when the schema is not current, the
  DKIM key configured cannot be read, or the SMTP or web port cannot be bound.
- Stopping stops the web pages, the scheduler and the search indexer, closes the SMTP server
  (no new messages), then lets the outbox worker release what it holds, so a restart resumes
  deliveries at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

from listserv import group_commit, heap, schema_version
from listserv.config import Config, ConfigError
from listserv.courier import CourierProcess, make_worker
from listserv.dkim import load_signer
from listserv.dmarc import DmarcResolver, resolver_for
from listserv.door import DoorProcess
from listserv.group_commit import GroupCommitter
from listserv.inbound_queue import Pipeline
from listserv.outbox import OutboxWorker
from listserv.search_behind import Indexer
from listserv.smtp import ListHandler, smtp_factory
from listserv.store import MIGRATIONS, Store

if TYPE_CHECKING:
    from bot.client import CommonroomBot
    from bot.leased import LeasedBot
    from digests.schedule import Scheduler
    from listserv.web.server import WebServer

log = logging.getLogger("commonroom.serve")


class StartupError(Exception):
    """Start-up cannot go on; the message says why and what to do."""


def schema_problem(store: Store) -> str | None:
    head = schema_version.head(MIGRATIONS / "versions")
    current = schema_version.current(store.engine)
    if current != head:
        return (f"the database schema is at {current or 'nothing'}, the code needs {head}: "
                "run 'commonroom db upgrade' first")
    return None


class App:
    def __init__(self, cfg: Config, store: Store | None = None, *,
                 smtp_port: int | None = None, web_port: int | None = None,
                 with_scheduler: bool = True) -> None:
        """``smtp_port=0``/``web_port=0`` ask the system for a free port (tests); ``port`` and
        ``web_url`` tell which."""
        self.cfg = cfg
        self.store = store or Store(cfg.database_url)
        self.worker: OutboxWorker | None = None  # None when it runs in ``courier``
        self.courier: CourierProcess | None = None
        self.committer: GroupCommitter | None = None
        self.pipeline: Pipeline | None = None
        self.indexer: Indexer | None = None  # PostgreSQL's search indexer
        self.door: DoorProcess | None = None
        self.server: asyncio.Server | None = None
        self.handler: ListHandler | None = None  # the in-process SMTP door's (tests)
        self.port = cfg.server.smtp_port if smtp_port is None else smtp_port
        self.with_scheduler = with_scheduler
        self.scheduler: Scheduler | None = None
        self.leased_bot: LeasedBot | None = None
        self.web: WebServer | None = None
        self.web_port = cfg.server.web_port if web_port is None else web_port

    @property
    def bot(self) -> CommonroomBot | None:
        """The Discord bot, while it runs in this process."""
        return self.leased_bot.bot if self.leased_bot is not None else None

    @property
    def web_url(self) -> str:
        """Where the web pages answer (``http://host:port``), once started."""
        assert self.web is not None, "the web server is not started"
        return self.web.url

    async def start(self) -> None:
        problem = await asyncio.to_thread(schema_problem, self.store)
        if problem:
            raise StartupError(problem)
        if self.cfg.server.smtp_process or self.cfg.server.delivery_process:
            # SQLite: queue with the SMTP process's and the delivery process's writers. Before
            # any writer thread starts, so every transaction of this process takes the file lock.
            self.store.share_write_lock()
        resolver = resolver_for(self.cfg)
        try:
            if self.cfg.server.delivery_process:
                load_signer(self.cfg)  # a DKIM key that cannot be read stops start-up here
                await self._start_courier()
            else:
                self.worker = await make_worker(self.cfg, self.store, resolver)
                await self.worker.start()
        except ConfigError as e:
            raise StartupError(str(e)) from None
        self.committer = group_commit.for_store(self.store,
                                                writers=self.cfg.server.handling_writers)
        self.committer.start()
        self.pipeline = Pipeline(self.store, self.cfg, self.committer, self.wake_outbox)
        await self.pipeline.start()
        if self.store.is_postgres:
            pipeline = self.pipeline
            self.indexer = Indexer(self.store, lambda: pipeline.idle_since,
                                   lambda: pipeline.handled)
            await self.indexer.start()
        if self.cfg.server.smtp_process:
            await self._start_door()
        else:
            await self._start_smtp(resolver)
        if self.with_scheduler:
            from digests.schedule import Scheduler

            self.scheduler = Scheduler(self.store, self.cfg, wake_outbox=self.wake_outbox)
            await self.scheduler.start()
        await self._start_web()
        if self.cfg.discord.token:
            await self._start_bot()
        where = (f"smarthost {self.cfg.delivery.smarthost}" if self.cfg.smarthost
                 else f"Maildir {self.cfg.maildir_path}")
        log.info("SMTP on %s:%s for %s; delivering to %s", self.cfg.server.smtp_host, self.port,
                 self.cfg.server.domain, where)

    async def _start_courier(self) -> None:
        self.courier = CourierProcess(self.cfg, self.store.settings)
        try:
            await self.courier.start()
        except RuntimeError as e:
            self.courier = None
            raise StartupError(f"the delivery process cannot start: {e}") from None

    def wake_outbox(self) -> None:
        """New outbox rows are committed: deliver them now. Thread-safe."""
        if self.courier is not None:
            self.courier.wake()
        elif self.worker is not None:
            self.worker.wake()

    def _delivery_counts(self) -> Mapping[str, int]:
        if self.courier is not None:
            return self.courier.counts
        return self.worker.counts if self.worker is not None else {}

    async def _start_smtp(self, resolver: DmarcResolver) -> None:
        assert self.pipeline is not None and self.committer is not None
        handler = self.handler = ListHandler(self.store, self.cfg, resolver,
                                             self.pipeline.accepted, self.committer)
        try:
            self.server = await asyncio.get_running_loop().create_server(
                smtp_factory(handler, self.cfg), host=self.cfg.server.smtp_host,
                port=self.port)
        except OSError as e:
            await self.stop()
            raise StartupError(
                f"cannot listen on {self.cfg.server.smtp_host}:{self.port} "
                f"({e.strerror}); is another commonroom running? Change [server] smtp_port "
                "or stop the other process") from None
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start_door(self) -> None:
        assert self.pipeline is not None
        pipeline = self.pipeline
        self.door = DoorProcess(self.cfg, self.store.settings, self.port,
                                lambda row_id, urgent, prompt: pipeline.accepted(
                                    row_id, urgent, prompt=prompt))
        try:
            self.port = await self.door.start()
        except RuntimeError as e:
            self.door = None
            await self.stop()
            raise StartupError(str(e)) from None

    async def _start_web(self) -> None:
        from listserv.web.app import create_app
        from listserv.web.context import WebContext
        from listserv.web.server import WebServer

        probes = {"smtp": self._smtp_problem, "scheduler": self._scheduler_problem}
        if self.courier is not None:  # a part of its own only when it is a process
            probes["delivery"] = self._delivery_problem
        context = WebContext(self.cfg, self.store, probes=probes,
                             wake_outbox=self.wake_outbox, delivery_counts=self._delivery_counts)
        host = self.cfg.server.web_host
        web = WebServer(create_app(context), host, self.web_port)
        try:
            await web.start()
        except OSError as e:
            await self.stop()
            raise StartupError(
                f"cannot serve the web pages on {host}:{self.web_port} ({e.strerror}); is "
                "another commonroom (or web server) using it? Change [server] web_port or stop "
                "the other process") from None
        self.web = web
        self.web_port = web.port
        log.info("web pages on %s (public address %s)", web.url, self.cfg.server.web_base_url)

    def _smtp_problem(self) -> str | None:
        if self.door is not None:
            return None if self.door.alive else "the SMTP process is not running"
        if self.server is None or not self.server.is_serving():
            return "the SMTP server is not listening"
        return None

    def _delivery_problem(self) -> str | None:
        if self.courier is not None and not self.courier.alive:
            return "the delivery process is not running"
        return None

    def _scheduler_problem(self) -> str | None:
        if not self.with_scheduler:
            return None  # not run by this process (tests, or a web-only process)
        if self.scheduler is None or not self.scheduler.alive:
            return "the scheduler is not running"
        return None

    async def _start_bot(self) -> None:
        from bot.context import BotContext
        from bot.leased import LeasedBot
        from bot.startup import BotStartupError

        self.leased_bot = LeasedBot(BotContext(self.cfg, self.store, self.wake_outbox))
        try:
            await self.leased_bot.start()
        except BotStartupError as e:
            await self.stop()
            raise StartupError(f"the Discord bot cannot start: {e}") from None

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every message accepted so far has been handled (tests, benches)."""
        assert self.pipeline is not None, "the app is not started"
        await self.pipeline.settle(timeout)

    def sweep_once(self) -> tuple[int, int]:
        """The scheduler's held-post sweep, run now (tests; the scheduler runs it every minute)."""
        from digests.jobs import sweep

        return sweep(self.store, self.cfg, self.wake_outbox)

    async def stop(self) -> None:
        if self.leased_bot is not None:
            await self.leased_bot.stop()
            self.leased_bot = None
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.indexer is not None:  # at most a batch to finish
            await self.indexer.stop()
            self.indexer = None
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.door is not None:
            await self.door.stop()
        if self.pipeline is not None:  # after the SMTP server: what it accepted is queued
            await self.pipeline.stop()
        if self.committer is not None:  # after the SMTP server: its sessions' units finish
            await asyncio.to_thread(self.committer.stop)
        if self.worker is not None:
            await self.worker.stop()
        if self.courier is not None:  # last, as the worker: what was handled is delivered
            await self.courier.stop()

    async def run_forever(self) -> None:
        await self.start()
        heap.freeze_startup_heap()  # full collections no longer walk the start-up heap
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            await self.stop()
            self.store.dispose()
