"""The scheduler inside ``commonroom serve``: APScheduler 3 with its jobs in the store.

- Jobs live in the ``apscheduler_jobs`` table of the same database (SQLAlchemyJobStore), so they
  survive restarts. Every job coalesces and has a misfire grace time: a run missed while the
  server was down happens once when it comes back (within the grace), never several times.
- With several ``serve`` processes on PostgreSQL, only the one holding a session-level advisory
  lock runs the scheduler; the others retry every ``LEADER_RETRY`` seconds, so when the holder
  dies (its connection closes and the lock with it) another takes over. SQLite is one process.
- Job functions are referred to by name (``digests.jobs:…``) because the job store pickles
  references, not closures; they reach the store and configuration through ``jobs.CONTEXT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Connection, text

from digests import jobs, periods
from listserv import lists
from listserv.config import Config
from listserv.store import Store

log = logging.getLogger("commonroom.scheduler")

LOCK_CLASS = 0x53434844  # "SCHD": the two-key advisory lock space, apart from the outbox's
LEADER_RETRY = 10.0  # seconds between tries to become the scheduling process
SYNC_SECONDS = 60.0  # how often list schedules are re-read (a changed schedule applies soon)
DIGEST_GRACE = 3 * 24 * 3600  # a digest missed by up to three days still goes out, once
SWEEP_SECONDS = 60  # held-post reminders and expiry

DIGEST_PREFIX = "digest:"
SWEEP_JOB = "moderation-sweep"
DUE_JOB = "due-items"  # scheduled posts and competition draws: their rows say when (H8)
EVENTS_JOB = "event-reminders"  # events (H7)
EVENTS_SECONDS = 300


@dataclass(frozen=True)
class JobInfo:
    id: str
    name: str
    next_run: datetime | None
    trigger: str


def job_defaults() -> dict[str, object]:
    return {"coalesce": True, "max_instances": 1, "misfire_grace_time": DIGEST_GRACE}


def sync_jobs(scheduler: BaseScheduler, store: Store) -> None:
    """Make the stored jobs match the lists: one digest job per list, with its schedule.

    A job whose trigger is unchanged is left alone, so its next run time (and any missed run
    that is due) survives; a changed schedule is rescheduled; jobs of deleted lists go.
    """
    with store.session() as s:
        wanted = {f"{DIGEST_PREFIX}{ml.name}": ml for ml in lists.every(s)}
    for job in scheduler.get_jobs():
        if job.id.startswith(DIGEST_PREFIX) and job.id not in wanted:
            scheduler.remove_job(job.id)
    for job_id, ml in wanted.items():
        try:
            trig = periods.trigger(ml.digest_schedule, ml.timezone)
        except periods.ScheduleProblem as e:
            log.error("digest schedule of %s is unusable: %s", ml.name, e, extra={"list": ml.name})
            continue
        job = scheduler.get_job(job_id)
        if job is None:
            scheduler.add_job(f"{jobs.__name__}:scheduled_digest", trig, args=[ml.name],
                              id=job_id, name=f"weekly digest of {ml.name}")
        elif str(job.trigger) != str(trig) or str(job.trigger.timezone) != str(trig.timezone):
            scheduler.reschedule_job(job_id, trigger=trig)
    if scheduler.get_job(SWEEP_JOB) is None:
        scheduler.add_job(f"{jobs.__name__}:moderation_sweep", "interval", seconds=SWEEP_SECONDS,
                          id=SWEEP_JOB, name="held-post reminders and expiry",
                          misfire_grace_time=SWEEP_SECONDS)
    if scheduler.get_job(DUE_JOB) is None:
        scheduler.add_job(f"{jobs.__name__}:due_items_job", "interval", seconds=SWEEP_SECONDS,
                          id=DUE_JOB, name="scheduled posts and competition draws",
                          misfire_grace_time=SWEEP_SECONDS)
    if scheduler.get_job(EVENTS_JOB) is None:  # events (H7)
        scheduler.add_job(f"{jobs.__name__}:event_reminders", "interval", seconds=EVENTS_SECONDS,
                          id=EVENTS_JOB, name="event reminders the day before",
                          misfire_grace_time=EVENTS_SECONDS)


def stored_jobs(store: Store) -> list[JobInfo]:
    """The jobs as stored, without running anything (for ``commonroom jobs list``)."""
    jobstore = SQLAlchemyJobStore(engine=store.engine)
    jobstore.start(None, "default")  # creates the table if missing
    return [JobInfo(j.id, j.name, j.next_run_time, str(j.trigger))
            for j in jobstore.get_all_jobs()]


class Scheduler:
    """Runs the jobs in this process while it holds the leader lock (always, on SQLite)."""

    def __init__(self, store: Store, cfg: Config, *, wake_outbox: jobs.Wake,
                 leader_retry: float = LEADER_RETRY) -> None:
        self.store = store
        self.leader_retry = leader_retry
        self.cfg = cfg
        self.wake_outbox = wake_outbox
        self.scheduler: AsyncIOScheduler | None = None
        self._lock_conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    @property
    def alive(self) -> bool:
        """Started and not stopped or crashed (leading or waiting to lead): for /healthz."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        jobs.CONTEXT = jobs.Context(self.store, self.cfg, self.wake_outbox)
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._lead_forever(), name="scheduler")

    async def stop(self) -> None:
        # Not a cancel: a cancelled to_thread call would finish unseen and leak its connection.
        self._stopping.set()
        if self._task is not None:
            await self._task
        self._stop_leading()

    async def _lead_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.scheduler is None:
                    if await asyncio.to_thread(self._take_lock):
                        await self._start_leading()
                elif not await asyncio.to_thread(self._still_holding):
                    log.warning("lost the scheduler lock; another process may take over")
                    self._stop_leading()
                if self.scheduler is not None:
                    await asyncio.to_thread(sync_jobs, self.scheduler, self.store)
            except Exception:
                log.exception("scheduler upkeep failed; retrying")
            pause = SYNC_SECONDS if self.scheduler is not None else self.leader_retry
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    async def _start_leading(self) -> None:
        scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.store.new_engine())},
            job_defaults=job_defaults(), timezone="UTC")
        # Started paused: only a started scheduler sees the stored jobs, and the sync must see
        # them to keep their next run times. Resuming then runs what was missed, once each.
        scheduler.start(paused=True)
        self.scheduler = scheduler
        await asyncio.to_thread(sync_jobs, scheduler, self.store)
        scheduler.resume()
        log.info("scheduler running: %s", ", ".join(j.id for j in scheduler.get_jobs()))

    def _stop_leading(self) -> None:
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
            self.scheduler = None
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a pooled connection keeps session locks
                conn.execute(text("SELECT pg_advisory_unlock(:c, 1)"), {"c": LOCK_CLASS})
            with contextlib.suppress(Exception):
                conn.close()

    # --- the leader lock (PostgreSQL) ------------------------------------------------------

    def _take_lock(self) -> bool:
        if not self.store.is_postgres:
            return True
        conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:c, 1)"),
                                {"c": LOCK_CLASS}).scalar())
        if got:
            self._lock_conn = conn
        else:
            conn.close()
        return got

    def _still_holding(self) -> bool:
        if self._lock_conn is None:
            return not self.store.is_postgres
        try:
            self._lock_conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False


def describe(job: JobInfo) -> str:
    when = f"{job.next_run:%Y-%m-%d %H:%M %Z}" if job.next_run else "paused"
    return f"{job.id}\t{when}\t{job.name}\t{job.trigger}"

