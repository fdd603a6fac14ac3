"""The SMTP door in a process of its own (``[server] smtp_process = true``).

Python runs one thread at a time per process. In one process, accepting mail shares that one
thread with the pipeline and delivery, so a burst is accepted only as fast as it is handled.
With the door in a child process, accepting (RCPT lookups, the header parse, one INSERT into the
inbound queue, group-committed) uses a core of its own, and the parent's pipeline takes the rows.

Invariants:
- The child does only what the in-process door does (``smtp.ListHandler``, its own
  ``GroupCommitter``): a 250 still means the row is committed.
- After each commit the child tells the parent the row (id, urgent, prompt) over a pipe; if a word is
  lost (the parent busy restarting, the pipe broken), the parent's sweep finds the row.
- The parent starts the child, learns its port (``smtp_port = 0`` asks for a free one), and
  starts it again if it dies (after a wait that grows while it keeps dying young,
  ``backoff.next_restart``); stopping closes the pipe and the child finishes what it accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from listserv.backoff import RESTART, next_restart
from listserv.config import Config
from listserv.store import StoreSettings

log = logging.getLogger("commonroom.door")

START_TIMEOUT = 60.0  # seconds for the child to import, connect and listen


@dataclass(frozen=True)
class DoorSpec:
    cfg: Config
    store: StoreSettings  # the parent's store's, not defaults from ``cfg``
    port: int
    log_level: int


def child_main(spec: DoorSpec, conn: Connection, stop: Connection) -> None:
    """The child process: serve SMTP, telling the parent each accepted row over ``conn``, until
    ``stop`` reads EOF (the parent closed it, or died) or SIGTERM."""
    run_child(_serve(spec, conn, stop), conn, spec.log_level)


def run_child(main: Coroutine[Any, Any, None], report: Connection, log_level: int) -> None:
    """The body of a child process of ``serve`` (this one, ``courier``'s): logging as the
    parent's, Ctrl-C left to the parent (which stops the child), ``main`` run, and a start-up
    problem sent as ("error", why) on ``report`` for the parent to say."""
    from listserv import logsetup

    logsetup.configure(level=log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(main)
    except Exception as e:
        with contextlib.suppress(OSError):
            report.send(("error", str(e)))
        raise SystemExit(1) from None


async def _serve(spec: DoorSpec, conn: Connection, stop_conn: Connection) -> None:
    from listserv.accept import Prepared, prompt
    from listserv.dmarc import resolver_for
    from listserv.group_commit import for_store
    from listserv.smtp import ListHandler, smtp_factory

    cfg = spec.cfg
    store = spec.store.open()
    store.share_write_lock()  # with the parent's writers, first come first served
    committer = for_store(store)  # on PostgreSQL with an urgent writer, as in the parent
    committer.start()
    loop = asyncio.get_running_loop()
    lost = [False]

    def tell(row_id: int, urgent: bool, prepared: Prepared) -> None:
        if lost[0]:
            return
        try:
            conn.send((row_id, urgent, prompt(prepared)))
        except OSError:  # the parent is gone or restarting: its sweep finds the row
            lost[0] = True

    handler = ListHandler(store, cfg, resolver_for(cfg), tell, committer)
    try:
        server = await loop.create_server(smtp_factory(handler, cfg), host=cfg.server.smtp_host,
                                          port=spec.port)
    except OSError as e:
        committer.stop()
        raise RuntimeError(
            f"cannot listen on {cfg.server.smtp_host}:{spec.port} ({e.strerror}); is another "
            "commonroom running? Change [server] smtp_port or stop the other process") from None
    from listserv.heap import freeze_startup_heap

    freeze_startup_heap()  # as serve's process does: full collections skip the start-up heap
    conn.send(("port", server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    loop.add_reader(stop_conn.fileno(), stop.set)  # nothing is written there: EOF means stop
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    loop.remove_reader(stop_conn.fileno())
    server.close()
    await server.wait_closed()
    await asyncio.to_thread(committer.stop)  # what was accepted is committed before exit
    store.dispose()


class Restarts:
    """The restarting half of a child process's handle (``DoorProcess``,
    ``courier.CourierProcess``): once the child died, start another after the policy's wait
    (``backoff.next_restart``: doubling while children die young or fail to start), until
    ``stop()`` (which cancels the wait)."""

    what = "the child process"  # in the log
    restart_policy = RESTART
    _process: Any
    _stopping: bool
    _restart: asyncio.Task[None] | None
    _attempt = 0  # restarts since the last child that ran the policy's stable time
    _started_at = 0.0  # time.monotonic() when the current child got ready
    restarts: int

    async def start(self) -> Any:
        raise NotImplementedError

    async def _reap(self) -> None:
        """The dead child reaped before its successor starts."""
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 5)

    def _restart_soon(self) -> None:
        """The child died: start another (``_start_again``) in a task of its own."""
        self._restart = asyncio.get_running_loop().create_task(
            self._start_again(time.monotonic() - self._started_at))

    async def _start_again(self, ran: float) -> None:
        """After a child that ran ``ran`` seconds died: start another, after the policy's wait,
        and again after each start that fails."""
        process = self._process
        if process is not None:  # it closed its pipe on its way out: its exit code, for the log
            await asyncio.to_thread(process.join, 1.0)
        code = process.exitcode if process is not None else None
        self._attempt, delay = next_restart(self.restart_policy, self._attempt, ran)
        log.error("%s stopped after %.1f s (exit code %s); starting it again in %g s "
                  "(attempt %d)", self.what, ran, code, delay, self._attempt)
        while not self._stopping:
            await asyncio.sleep(delay)  # stop() cancels it
            await self._reap()
            try:
                await self.start()
            except RuntimeError as e:
                self._attempt, delay = next_restart(self.restart_policy, self._attempt, None)
                log.error("%s cannot start again: %s; trying again in %g s (attempt %d)",
                          self.what, e, delay, self._attempt)
                continue
            self.restarts += 1
            log.warning("%s is running again (restart %d)", self.what, self.restarts)
            return


class DoorProcess(Restarts):
    """The parent's handle on the child: start, watch, restart, stop."""

    what = "the SMTP process"

    def __init__(self, cfg: Config, store: StoreSettings, port: int,
                 on_accepted: Callable[[int, bool, bool], None]) -> None:
        """``store``: the App's store's settings, which the child opens its store with;
        ``on_accepted(row_id, urgent, prompt)``: a row the child committed (``prompt``: a
        person waits on it, ``accept.prompt``)."""
        self.cfg = cfg
        self.store = store
        self.port = port
        self.on_accepted = on_accepted
        self._ctx = multiprocessing.get_context("spawn")  # no threads or loops copied by fork
        self._process: Any = None
        self._conn: Connection | None = None
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None
        self._stop_write: Connection | None = None
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def spec(self) -> DoorSpec:
        """What the child is started with."""
        return DoorSpec(self.cfg, self.store, self.port, logging.getLogger().getEffectiveLevel())

    async def start(self) -> int:
        """Start the child; its port once it listens. RuntimeError with the child's reason."""
        self._stopping = False
        reader, writer = self._ctx.Pipe(duplex=False)  # the child's words to us
        # The child sees us stop (or die) as EOF on a second pipe, which we never write.
        stop_read, stop_write = self._ctx.Pipe(duplex=False)
        spec = self.spec()
        process = self._ctx.Process(target=child_main, args=(spec, writer, stop_read),
                                    name="commonroom-smtp", daemon=True)
        process.start()
        writer.close()
        stop_read.close()
        first = await await_first_word(reader, process, "the SMTP process", START_TIMEOUT,
                                       stop_write)
        if first[0] != "port":
            raise RuntimeError(str(first[1]))
        self.port = int(first[1])
        self._started_at = time.monotonic()
        self._process, self._conn, self._stop_write = process, reader, stop_write
        asyncio.get_running_loop().add_reader(reader.fileno(), self._readable)
        return self.port

    def _readable(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while conn.poll():
                row_id, urgent, prompt = conn.recv()
                self.on_accepted(int(row_id), bool(urgent), bool(prompt))
        except (EOFError, OSError):
            self._gone()

    def _gone(self) -> None:
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        if self._stop_write is not None:
            self._stop_write.close()
            self._stop_write = None
        if self._stopping:
            return
        self._restart_soon()

    async def stop(self) -> None:
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        if self._process is None:
            return
        if self._stop_write is not None:
            self._stop_write.close()  # EOF in the child: it finishes and exits
            self._stop_write = None
        await asyncio.to_thread(self._process.join, 30)
        if self._process.is_alive():
            self._process.terminate()
            await asyncio.to_thread(self._process.join, 5)
        if self._conn is not None:
            self._readable()  # the child's last words
            if self._conn is not None:
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
                self._conn.close()
                self._conn = None
        self._process = None


async def await_first_word(conn: Connection, process: Any, what: str, timeout: float,
                           *pipes: Connection) -> tuple[str, Any]:
    """``first_word`` from a thread. If it is not ("port" or "ready"), or the wait is cancelled
    (``stop()`` during a restart), the child is killed and reaped and ``conn`` and ``pipes``
    closed, so no child is left running untracked. Shared with ``courier``."""
    try:
        first = await asyncio.to_thread(first_word, conn, process, what, timeout)
    except BaseException:
        _abandon(process, conn, *pipes)
        raise
    if first[0] not in ("port", "ready"):
        _abandon(process, conn, *pipes)
    return first


def _abandon(process: Any, *pipes: Connection) -> None:
    if process.is_alive():
        process.kill()
    process.join(5)
    for pipe in pipes:
        pipe.close()


def first_word(conn: Connection, process: Any, what: str,
               timeout: float = START_TIMEOUT) -> tuple[str, Any]:
    """A child process's first word on ``conn`` (("port", N), ("ready", id)…), or ("error",
    why) if it exits or stays silent for ``timeout`` seconds. ``what`` names it in the error.
    Shared with ``courier``."""
    waited = 0.0
    while waited < timeout:
        if conn.poll(0.2):
            try:
                word = conn.recv()
            except EOFError:
                break
            return (str(word[0]), word[1])
        waited += 0.2
        if not process.is_alive():
            break
    return ("error", f"{what} did not start (exit code {process.exitcode})")
