"""Leadership: run a job (the Discord bot) in whichever process holds its lease
(``listserv.leases``), and only there; another process takes over when the holder stops or dies.

Invariants:
- ``begin`` runs only while this process holds the lease, ``end`` runs as soon as it may not
  (a renewal failed, or had not finished when less than ``renew_every`` was left of the lease
  the last one gave), and before a graceful stop releases it. The holder renews every
  ``renew_every`` seconds for ``ttl`` seconds, so it has at least ``renew_every`` seconds to
  stop after noticing before anyone else may begin. A take or renewal may take up to about
  ``ttl - 2 * renew_every`` seconds (a slow store, a loaded machine) and still count
  (``wait_limit``): it is waited for, not abandoned, since its thread would go on and take or
  renew the lease anyway, and the job would end and begin again for nothing.
- A job that ends by itself (``alive`` says no: the bot's gateway gave up) is ended and the
  lease released, and this process does not try again for ``ttl`` seconds, so the waiting
  processes, trying every ``retry_every`` seconds plus their own store time, take it first.
- A waiting process tries every ``retry_every`` seconds: it takes over within that of a
  graceful stop, and within ``ttl + retry_every`` of the holder's death.
- The first try is made in ``start``: when it wins, ``begin`` runs there and its error reaches
  the caller (start-up fails fast); a later ``begin`` that fails is logged and the lease
  released, to be tried again. Renewals go on meanwhile, so a slow ``begin`` keeps the lease.
- Works the same on SQLite and PostgreSQL: it is rows and clocks, no connection is held. (The
  scheduler's advisory lock would do on PostgreSQL, but not between two Apps on SQLite, and a
  dead host's lock lasts until the server's TCP keepalive gives up; an expiry bounds takeover.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from listserv import leases
from listserv.store import Store

log = logging.getLogger("commonroom.lease")


@dataclass(frozen=True)
class LeaseTiming:
    ttl: float = 30.0  # seconds a take or a renewal holds the lease
    renew_every: float = 10.0  # the holder renews this often; a slower renewal counts as lost
    retry_every: float = 10.0  # a waiting process tries this often


TIMING = LeaseTiming()  # what processes run with (the tests set shorter ones)

Step = Callable[[], Awaitable[None]]


def wait_limit(timing: LeaseTiming, good_until: float | None, now: float) -> float:
    """Seconds to wait for a take or renewal started at ``now`` (monotonic). A holder's lease is
    good until ``good_until``: its renewal is waited for while at least ``renew_every`` of it
    is left (time to end the job). A take by a process that holds nothing is waited for while
    the lease it would give has ``2 * renew_every`` left (time to renew it before it runs out).
    Either way a store that is slow but answers within ``ttl - 2 * renew_every`` or so is not
    a lost lease: the thread of an abandoned take goes on and may take or renew it anyway."""
    if good_until is None:
        return timing.ttl - 2 * timing.renew_every
    return max(good_until - timing.renew_every - now, 0.0)


class Leadership:
    def __init__(self, store: Store, name: str, what: str, *, begin: Step, end: Step,
                 alive: Callable[[], bool] = lambda: True,
                 timing: LeaseTiming | None = None) -> None:
        self.store = store
        self.name = name
        self.what = what  # for the log: "the Discord bot"
        self.begin = begin
        self.end = end
        self.alive = alive
        self.timing = timing or TIMING
        self.holder = leases.holder_id()
        self.holding = False
        self._begun = False  # begin returned and end has not been called
        self._seen: str | None = None  # the other holder last logged
        self._good_until = 0.0  # monotonic: the lease is ours at least until then
        self._beginning: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        got = await self._try()
        self._task = asyncio.create_task(self._keep(), name=f"lease {self.name}")
        if not got:
            await self._note_other()
            return
        self._gained()
        try:
            await self.begin()
        except BaseException:
            await self.stop()
            raise
        if not self.holding:  # the lease was lost while it began: end it again at once
            await self.end()
            return
        self._begun = True

    async def stop(self) -> None:
        """End the job here (if it runs here) and give the lease up at once."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.holding:
            await self._end()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release)
            log.info("%s stopped in this process (%s); the lease is free", self.what,
                     self.holder)

    # --- the loop ------------------------------------------------------------------------

    async def _keep(self) -> None:
        while not self._stopping.is_set():
            pause = self.timing.renew_every if self.holding else self.timing.retry_every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            if self._stopping.is_set():
                return
            try:
                if self.holding and self._begun and not self.alive():
                    log.error("%s stopped by itself in this process (%s); releasing its lease",
                              self.what, self.holder)
                    await self._end()
                    await asyncio.to_thread(self._release)
                    with contextlib.suppress(TimeoutError):  # the others' turn first
                        await asyncio.wait_for(self._stopping.wait(), self.timing.ttl)
                    continue
                got = await self._try()
                if self.holding and not got:
                    log.warning("%s: this process (%s) could not renew its lease; stopping it "
                                "here, another process may take over", self.what, self.holder)
                    await self._end()
                elif got and not self.holding:
                    self._gained()
                    self._beginning = asyncio.create_task(self._begin_later())
                elif not got:
                    await self._note_other()
            except Exception:
                log.exception("%s: lease upkeep failed; trying again", self.what)

    async def _try(self) -> bool:
        """Take or renew; False also when the store fails, or is slower than ``wait_limit``
        allows."""
        started = time.monotonic()
        try:
            got = await asyncio.wait_for(asyncio.to_thread(self._take), wait_limit(
                self.timing, self._good_until if self.holding else None, started))
        except Exception as e:
            log.warning("%s: lease %s not taken or renewed: %s", self.what, self.name,
                        type(e).__name__ if isinstance(e, TimeoutError) else e)
            return False
        if got:  # the store's clock read the time after ``started``: ours until then at least
            self._good_until = started + self.timing.ttl
        return got

    def _gained(self) -> None:
        self.holding = True
        self._seen = None
        log.info("%s runs in this process (%s): it holds the lease %r", self.what,
                 self.holder, self.name)

    async def _begin_later(self) -> None:
        try:
            await self.begin()
            self._begun = True
        except Exception as e:
            log.error("%s could not start in this process: %s; released, trying again in "
                      "%gs", self.what, e, self.timing.retry_every, exc_info=True)
            self.holding = False
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release)

    async def _end(self) -> None:
        self.holding = self._begun = False
        beginning, self._beginning = self._beginning, None
        if beginning is not None and not beginning.done():
            beginning.cancel()
            await asyncio.gather(beginning, return_exceptions=True)
        try:
            await self.end()
        except Exception:
            log.exception("%s did not stop cleanly", self.what)

    async def _note_other(self) -> None:
        """Log who holds the lease, once per holder."""
        try:
            other = await asyncio.to_thread(self._holder)
        except Exception:
            return
        if other is not None and other.holder != self._seen:
            log.info("%s runs in another process (%s, since %s UTC); this one (%s) takes over "
                     "if it stops", self.what, other.holder,
                     f"{other.taken_at:%Y-%m-%d %H:%M:%S}", self.holder)
        self._seen = other.holder if other is not None else None

    # --- the store (in worker threads) -----------------------------------------------------

    def _take(self) -> bool:
        with self.store.session() as s:
            return leases.take(s, self.name, self.holder, timedelta(seconds=self.timing.ttl))

    def _release(self) -> None:
        with self.store.session() as s:
            leases.release(s, self.name, self.holder)

    def _holder(self) -> leases.Holding | None:
        with self.store.read_session() as s:
            return leases.holder(s, self.name)
