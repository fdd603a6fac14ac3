"""``commonroom outbox list|retry`` (issue 7.14): failed deliveries can be found and sent again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from listserv import config as config_mod
from listserv.models import MailingList, Outbox, OutboxState, utcnow
from listserv.store import Store
from tests.harness import cli, make_list, running, write_config
from tests.smtpsink import SmtpSink

SENDER = "demo-bounces@lists.example.org"
PAYLOAD = b"From: demo-owner@lists.example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def add_rows(store: Store) -> None:
    make_list(store, "demo")
    make_list(store, "other")
    long_ago = utcnow() - timedelta(days=6)
    with store.session() as s:
        ids = {ml.name: ml.id for ml in s.exec(select(MailingList))}
        for name, who, state in (("demo", "ann", "failed"), ("demo", "bob", "sent"),
                                 ("other", "cy", "failed"), ("demo", "dee", "pending")):
            s.add(Outbox(list_id=ids[name], recipient=f"{who}@example.org", sender=SENDER,
                         payload=PAYLOAD, state=state, attempts=40, created_at=long_ago,
                         next_attempt_at=long_ago if state == "failed" else utcnow()
                         + timedelta(hours=1),
                         last_error="421 4.3.2 shutting down" if state == "failed" else ""))


def states(store: Store) -> dict[str, str]:
    with store.session() as s:
        return {r.recipient: r.state for r in s.exec(select(Outbox))}


def test_list_shows_failed_deliveries(store: Store, tmp_path: Path, db_url: str) -> None:
    add_rows(store)
    path = write_config(tmp_path, db_url, "127.0.0.1:2525")
    failed = cli(path, "outbox", "list", "--state", "failed")
    assert failed.exit_code == 0, failed.output
    lines = failed.output.splitlines()
    assert [line.split("\t")[3] for line in lines] == ["cy@example.org", "ann@example.org"]
    assert all("\tfailed\t" in line and "421 4.3.2 shutting down" in line for line in lines)
    one_list = cli(path, "outbox", "list", "--list", "demo")
    assert {line.split("\t")[3] for line in one_list.output.splitlines()} == {
        "ann@example.org", "bob@example.org", "dee@example.org"}
    unknown = cli(path, "outbox", "list", "--list", "nope")
    assert unknown.exit_code == 1 and "there is no list called 'nope'" in unknown.output
    bad_state = cli(path, "outbox", "list", "--state", "lost")
    assert bad_state.exit_code == 2


def test_retry_requeues_failed_rows_and_they_are_delivered(store: Store, tmp_path: Path,
                                                           db_url: str) -> None:
    add_rows(store)
    with SmtpSink() as sink:
        path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
        done = cli(path, "outbox", "retry", "--list", "demo")
        assert done.exit_code == 0, done.output
        assert "re-queued 1 failed deliveries of demo" in done.output
        assert states(store) == {"ann@example.org": "pending", "bob@example.org": "sent",
                                 "cy@example.org": "failed", "dee@example.org": "pending"}
        # A new lifetime: the row is 6 days old, yet a 4xx after the retry is not its last.
        sink.script_data(451)
        with running(config_mod.load(path, env={}), store) as srv:
            srv.drain()
        with store.session() as s:
            ann = s.exec(select(Outbox).where(Outbox.recipient == "ann@example.org")).one()
        assert (ann.state, ann.attempts) == (OutboxState.PENDING.value, 41)
        assert ann.requeued_at is not None and ann.next_attempt_at > utcnow()
        with store.session() as s:  # its back-off over, the smarthost takes it
            ann.next_attempt_at = utcnow()
            s.add(ann)
        with running(config_mod.load(path, env={}), store) as srv:
            srv.drain()
        assert states(store)["ann@example.org"] == OutboxState.SENT.value
        assert [m.rcpt_tos for m in sink.messages] == [("ann@example.org",)]
    again = cli(path, "outbox", "retry")
    assert again.exit_code == 0 and "re-queued 1 failed deliveries;" in again.output
    assert cli(path, "outbox", "retry").output.startswith("no failed deliveries")
