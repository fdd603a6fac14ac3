"""Scheduled posts (listserv.scheduled_posts) on a fixed clock: the right local times across the
daylight-saving changes, each occurrence once (twice run, missed, after a restart), the
pipeline still deciding, the CLI, and a post reaching the smarthost through the running server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from digests import jobs
from listserv import config as config_mod
from listserv import scheduled_posts
from listserv.config import Config
from listserv.models import MailingList, Message, ScheduledPost, ScheduledState
from listserv.store import Store
from listserv.when import WhenProblem
from tests.harness import cli, make_list, parse, running, wait_until
from tests.smtpsink import SmtpSink

GUEST = "guest@council.gov.uk"
MEMBERS = (GUEST, "ann@district.gov.uk")


@pytest.fixture
def cfg(config_path: Path) -> Config:
    return config_mod.load(config_path, env={})


def _schedule(store: Store, at: datetime, every: str = "", *, now: datetime,
              list_name: str = "demo") -> int:
    with store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == list_name)).one()
        row = scheduled_posts.schedule(s, ml, from_address=GUEST, subject="Guest post",
                                       body="This week's guest post.\n", at=at, every=every,
                                       now=now)
        assert row.id is not None
        return row.id


def _posts(store: Store) -> list[Message]:
    with store.session() as s:
        return list(s.exec(select(Message).where(col(Message.subject) == "Guest post")
                           .order_by(col(Message.id))).all())


def test_daily_post_goes_out_at_seven_local_across_the_october_change(store: Store,
                                                                      cfg: Config) -> None:
    """London's clocks go back at 02:00 BST on Sunday 25 October 2026 (01:00 UTC): 07:00 is
    06:00 UTC before it and 07:00 UTC from that Sunday on."""
    make_list(store, "demo", members=MEMBERS)
    start = datetime(2026, 10, 22, 12, 0, tzinfo=UTC)
    _schedule(store, start, "every day at 07:00", now=start)
    sent = []
    now = start
    while now < datetime(2026, 10, 28, 12, 0, tzinfo=UTC):  # a tick every 20 minutes
        now += timedelta(minutes=20)
        sent += [(s.occurrence, now) for s in scheduled_posts.run_due(store, cfg, now)]
    expected = [datetime(2026, 10, d, 6, 0, tzinfo=UTC) for d in (23, 24)] + \
               [datetime(2026, 10, d, 7, 0, tzinfo=UTC) for d in (25, 26, 27, 28)]
    assert [occ for occ, _ in sent] == expected
    assert all(timedelta(0) <= tick - occ < timedelta(minutes=20) for occ, tick in sent)
    posts = _posts(store)
    assert len(posts) == len(sent) and {p.status for p in posts} == {"accepted"}
    assert [parse(p.raw)["Date"] for p in posts][-1] == "Wed, 28 Oct 2026 07:00:00 +0000"


def test_weekly_post_moves_to_summer_time_in_march(store: Store, cfg: Config) -> None:
    make_list(store, "demo", members=MEMBERS)
    start = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)
    sid = _schedule(store, start, "every Monday at 08:30", now=start)
    first = scheduled_posts.run_due(store, cfg, datetime(2027, 3, 22, 8, 31, tzinfo=UTC))
    assert [s.occurrence for s in first] == [datetime(2027, 3, 22, 8, 30, tzinfo=UTC)]
    assert scheduled_posts.run_due(store, cfg, datetime(2027, 3, 29, 7, 29, tzinfo=UTC)) == []
    second = scheduled_posts.run_due(store, cfg, datetime(2027, 3, 29, 7, 30, tzinfo=UTC))
    assert [s.occurrence for s in second] == [datetime(2027, 3, 29, 7, 30, tzinfo=UTC)]  # BST
    with store.session() as s:
        row = s.get(ScheduledPost, sid)
        assert row is not None and row.sent_count == 2
        assert row.next_at == datetime(2027, 4, 5, 7, 30, tzinfo=UTC)


def test_an_occurrence_goes_out_once_even_when_missed_or_after_a_restart(
        store: Store, db_url: str, cfg: Config) -> None:
    make_list(store, "demo", members=MEMBERS)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    once = _schedule(store, datetime(2026, 12, 2, 9, 0, tzinfo=UTC), now=start)
    daily = _schedule(store, start, "every day at 07:00", now=start)
    # Down from the 1st to the 5th: the one-off goes out once, the daily post once (not 4 times).
    late = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert sorted(s.scheduled_id for s in scheduled_posts.run_due(store, cfg, late)) == \
        [once, daily]
    assert scheduled_posts.run_due(store, cfg, late) == []
    restarted = Store(db_url)  # a new process: only the rows say what was sent
    try:
        assert scheduled_posts.run_due(restarted, cfg, late + timedelta(hours=1)) == []
        with restarted.session() as s:
            one = s.get(ScheduledPost, once)
            rep = s.get(ScheduledPost, daily)
            assert one is not None and one.state == ScheduledState.DONE.value
            assert rep is not None and rep.next_at == datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
            assert rep.last_sent_at == datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
        assert len(_posts(store)) == 2
    finally:
        restarted.dispose()


def test_the_pipeline_still_decides(store: Store, cfg: Config) -> None:
    make_list(store, "demo", members=MEMBERS, emergency=True)  # every post is held
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    _schedule(store, datetime(2026, 12, 2, 9, 0, tzinfo=UTC), now=start)
    sent = scheduled_posts.run_due(store, cfg, datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    assert [s.action for s in sent] == ["hold"]
    assert [p.status for p in _posts(store)] == ["held"]


def test_refusals_name_the_problem(store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with store.session() as s:
        ml = s.exec(select(MailingList)).one()
        with pytest.raises(ValueError, match="not a member of demo"):
            scheduled_posts.schedule(s, ml, from_address="stranger@x.example", subject="s",
                                     body="b", at=now + timedelta(days=1), now=now)
        with pytest.raises(WhenProblem, match="has passed"):
            scheduled_posts.schedule(s, ml, from_address=GUEST, subject="s", body="b",
                                     at=now - timedelta(minutes=1), now=now)
        with pytest.raises(WhenProblem, match="every day at 07:00"):
            scheduled_posts.schedule(s, ml, from_address=GUEST, subject="s", body="b",
                                     at=now, every="fortnightly-ish", now=now)


def test_cli_add_list_change_cancel(store: Store, config_path: Path, tmp_path: Path) -> None:
    make_list(store, "demo", members=MEMBERS)
    body = tmp_path / "body.txt"
    body.write_text("Guest post body.\n", encoding="utf-8")
    added = cli(config_path, "schedule", "add", "demo", "--at", "2030-01-01T09:00", "--every",
                "every second Wednesday at 09:00", "--from", GUEST, "--subject", "Guest post",
                "--body-file", str(body))
    assert added.exit_code == 0, added.output
    sid = added.output.split("\t")[0]
    assert "Wed 2030-01-02 09:00 GMT" in added.output and "every second Wednesday" in added.output
    listed = cli(config_path, "schedule", "list", "demo")
    assert listed.output.startswith(f"{sid}\tWed 2030-01-02 09:00 GMT") and GUEST in listed.output
    changed = cli(config_path, "schedule", "change", sid, "--at", "2030-07-01T00:00")
    assert changed.exit_code == 0 and "Wed 2030-07-03 09:00 BST" in changed.output
    once = cli(config_path, "schedule", "change", sid, "--every", "", "--at", "2030-07-04 10:00")
    assert once.exit_code == 0 and "\tonce\t" in once.output
    sender = cli(config_path, "schedule", "change", sid, "--from", MEMBERS[1].upper())
    assert sender.exit_code == 0 and MEMBERS[1] in sender.output, sender.output
    stranger = cli(config_path, "schedule", "change", sid, "--from", "x@y.example",
                   "--subject", "not this")
    assert stranger.exit_code == 1 and "members add" in stranger.output
    listed = cli(config_path, "schedule", "list", "demo").output
    assert MEMBERS[1] in listed and GUEST not in listed and "not this" not in listed
    assert cli(config_path, "schedule", "cancel", sid).exit_code == 0
    assert "no scheduled posts on demo" in cli(config_path, "schedule", "list", "demo").output
    again = cli(config_path, "schedule", "cancel", sid)
    assert again.exit_code == 1 and "it is cancelled" in again.output
    bad = cli(config_path, "schedule", "add", "demo", "--at", "someday", "--from", GUEST,
              "--subject", "s", "--body-file", str(body))
    assert bad.exit_code == 1 and "next Friday 12:00" in bad.output
    stranger = cli(config_path, "schedule", "add", "demo", "--at", "2030-01-01T09:00", "--from",
                   "x@y.example", "--subject", "s", "--body-file", str(body))
    assert stranger.exit_code == 1 and "members add" in stranger.output
    nolist = cli(config_path, "schedule", "list", "nope")
    assert nolist.exit_code == 1 and "no list called 'nope'" in nolist.output


def test_a_due_post_reaches_the_members_through_the_running_server(
        store: Store, config_path: Path, sink: SmtpSink) -> None:
    make_list(store, "demo", members=MEMBERS)
    now = datetime.now(UTC)
    _schedule(store, now + timedelta(days=1), now=now)
    with running(config_mod.load(config_path, env={}), store) as server:
        assert server.app.worker is not None
        due = now + timedelta(days=1, minutes=1)
        assert jobs.due_items(store, server.cfg, server.app.worker.wake, due) == 1
        server.drain()
        got = wait_until(lambda: len(sink.messages) >= len(MEMBERS) and sink.messages,
                         what="the guest post delivered")
        assert sorted(r for m in got for r in m.rcpt_tos) == sorted(MEMBERS)
        assert "Guest post" in parse(got[0].data)["Subject"]
        assert jobs.due_items(store, server.cfg, server.app.worker.wake, due) == 0
