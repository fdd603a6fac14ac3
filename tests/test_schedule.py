"""The scheduler: digest periods from cron schedules (pure), job syncing that keeps missed runs,
and one scheduling process among several on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine
from sqlmodel import select

from digests import periods
from digests.schedule import (
    DIGEST_PREFIX,
    DUE_JOB,
    EVENTS_JOB,
    SWEEP_JOB,
    Scheduler,
    stored_jobs,
    sync_jobs,
)
from listserv.config import Config
from listserv.models import MailingList
from listserv.store import Store
from tests.harness import make_list, wait_until

LONDON = ZoneInfo("Europe/London")


def test_latest_fire_is_the_last_scheduled_time_at_or_before_now() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    assert periods.latest_fire("0 8 * * mon", "Europe/London", now) == \
        datetime(2026, 11, 23, 8, 0, tzinfo=LONDON)
    exactly = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert periods.latest_fire("0 8 * * mon", "Europe/London", exactly) == exactly
    # Summer time: 08:00 in London is 07:00 UTC.
    june = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    assert periods.latest_fire("0 8 * * mon", "Europe/London", june) == \
        datetime(2026, 6, 8, 7, 0, tzinfo=UTC)
    assert periods.latest_fire("0 9 1 * *", "UTC", now) == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def test_periods_and_numbering() -> None:
    end = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert periods.period_start(None, end) == end - timedelta(days=7)
    earlier = end - timedelta(days=3)
    assert periods.period_start(earlier, end) == earlier
    assert periods.volume_and_number(None, end) == (1, 1)
    assert periods.volume_and_number((1, 4, end - timedelta(days=7)), end) == (1, 5)
    new_year = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    assert periods.volume_and_number((1, 52, datetime(2026, 12, 28, 8, tzinfo=UTC)), new_year) == (2, 1)


@pytest.mark.parametrize("schedule,tz,message", [
    ("0 8 * *", "Europe/London", "not a cron expression"),
    ("0 25 * * mon", "Europe/London", "not a cron expression"),
    ("0 8 * * mon", "Mars/Olympus", "unknown time zone"),
])
def test_bad_schedules_say_what_is_wrong(schedule: str, tz: str, message: str) -> None:
    with pytest.raises(periods.ScheduleProblem, match=message):
        periods.trigger(schedule, tz)


def _scheduler(store: Store) -> tuple[BackgroundScheduler, Engine]:
    engine = store.new_engine()
    sched = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=engine)},
                                timezone="UTC")
    sched.start(paused=True)
    return sched, engine


def test_sync_keeps_next_runs_reschedules_changes_and_drops_deleted_lists(store: Store) -> None:
    for name in ("alpha", "beta", "gamma"):
        make_list(store, name)
    sched, engine = _scheduler(store)
    try:
        sync_jobs(sched, store)
        assert {j.id for j in sched.get_jobs()} == {f"{DIGEST_PREFIX}{n}" for n in
                                                    ("alpha", "beta", "gamma")} | {SWEEP_JOB, DUE_JOB,
                                                                                 EVENTS_JOB}
        missed = datetime.now(UTC) - timedelta(days=1)
        sched.modify_job(f"{DIGEST_PREFIX}alpha", next_run_time=missed)
        with store.session() as s:
            beta = s.exec(select(MailingList).where(MailingList.name == "beta")).one()
            beta.digest_schedule = "30 17 * * fri"
            s.add(beta)
            s.delete(s.exec(select(MailingList).where(MailingList.name == "gamma")).one())
        sync_jobs(sched, store)
        assert sched.get_job(f"{DIGEST_PREFIX}gamma") is None
        alpha_job = sched.get_job(f"{DIGEST_PREFIX}alpha")
        assert alpha_job is not None and alpha_job.next_run_time == missed, "a missed run is kept"
        beta_job = sched.get_job(f"{DIGEST_PREFIX}beta")
        assert beta_job is not None and beta_job.next_run_time.weekday() == 4
        assert beta_job.next_run_time.astimezone(LONDON).hour == 17
    finally:
        sched.shutdown()
        # BackgroundScheduler's thread looks at the job store once more after shutting it
        # down; dispose again so that connection is closed, not left to the garbage collector.
        engine.dispose()
    assert {j.id for j in stored_jobs(store)} >= {f"{DIGEST_PREFIX}alpha", f"{DIGEST_PREFIX}beta"}


async def test_one_scheduling_process_among_several_on_postgresql(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the leader lock is PostgreSQL's; SQLite runs one process")
    stores = [Store(db_url), Store(db_url)]
    stores[0].upgrade()
    cfg = Config.__new__(Config)
    first = Scheduler(stores[0], cfg, wake_outbox=lambda: None, leader_retry=0.2)
    second = Scheduler(stores[1], cfg, wake_outbox=lambda: None, leader_retry=0.2)
    try:
        await first.start()
        await asyncio.to_thread(wait_until, lambda: first.leading, 10, "the first to lead")
        await second.start()
        await asyncio.sleep(1.0)
        assert first.leading and not second.leading
        await first.stop()  # the leader goes away: its lock goes with it
        await asyncio.to_thread(wait_until, lambda: second.leading, 10, "the second to take over")
    finally:
        await first.stop()
        await second.stop()
        for s in stores:
            s.dispose()
