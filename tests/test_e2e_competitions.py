"""A competition end to end: started with the CLI, entered by email through the running
server's SMTP door (duplicates once, a non-member refused), a server restart before the closing
time, the draw once by the scheduler's due-items job, the winner told by mail and the list told
in the thread, ``verify`` agreeing, and the first reserve drawn with the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digests import jobs
from listserv import config as config_mod
from listserv.models import Competition, Message
from listserv.store import Store
from tests.harness import Running, cli, mail, make_list, parse, running, wait_until
from tests.smtpsink import SmtpSink

MOD = "mod@council.gov.uk"
MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk", "cat@parish.gov.uk")
POST = "demo@lists.example.org"


def _reply(server: Running, sender: str, parent: str, n: int) -> None:
    server.send(sender, POST, mail(sender, POST, "Re: Competition: win a book token",
                                   "Me please!\n", headers={"In-Reply-To": f"<{parent}>"},
                                   message_id=f"entry{n}@example.org"))


def test_competition_by_email_across_a_restart(store: Store, config_path: Path,
                                               sink: SmtpSink) -> None:
    make_list(store, "demo", moderators=(MOD,), members=MEMBERS)
    started = cli(config_path, "competitions", "start", "demo", "--prize", "a book token",
                  "--closes", "next Friday 12:00", "--reserves", "1")
    assert started.exit_code == 0, started.output
    cid = int(started.output.strip())
    with store.session() as s:
        comp = s.get(Competition, cid)
        assert comp is not None
        closes = comp.closes_at
        parent = s.get(Message, comp.message_pk).message_id  # type: ignore[union-attr]
    assert closes > datetime.now(UTC)
    cfg = config_mod.load(config_path, env={})
    with running(cfg, store) as server:
        _reply(server, MEMBERS[0], parent, 1)
        _reply(server, MEMBERS[0], parent, 2)  # a second reply: still one entry
        _reply(server, "stranger@elsewhere.example", parent, 3)  # held: a non-member
    with running(cfg, store) as server:  # restarted before the closing time
        _reply(server, MEMBERS[1], parent, 4)
        entrants = cli(config_path, "competitions", "entrants", str(cid))
        assert "open, 2 entrants" in entrants.output
        assert entrants.output.count(MEMBERS[0]) == 1 and "stranger" not in entrants.output
        early = cli(config_path, "competitions", "draw", str(cid))
        assert early.exit_code == 1 and "--now" in early.output
        assert server.app.worker is not None
        sink.messages.clear()
        assert jobs.due_items(store, cfg, server.app.worker.wake, closes - timedelta(minutes=1)) == 0
        assert jobs.due_items(store, cfg, server.app.worker.wake, closes + timedelta(minutes=1)) == 1
        assert jobs.due_items(store, cfg, server.app.worker.wake, closes + timedelta(minutes=2)) == 0
        with store.session() as s:
            comp = s.get(Competition, cid)
            assert comp is not None
            winner = MEMBERS[json.loads(comp.picks)[0]]
        server.drain()
        got = wait_until(lambda: [m for m in sink.messages if winner in m.rcpt_tos
                                  and "You won" in parse(m.data)["Subject"]] and sink.messages,
                         what="the winner's notice")
        results = [m for m in got if parse(m.data)["Subject"].startswith("Re: ")
                   and b"Seed:" in m.data]
        assert sorted(r for m in results for r in m.rcpt_tos) == sorted((MOD, *MEMBERS))
        assert parse(results[0].data)["In-Reply-To"] == f"<{parent}>"
        again = cli(config_path, "competitions", "draw", str(cid), "--now")
        assert again.exit_code == 1 and "cannot be drawn again" in again.output
        verified = cli(config_path, "competitions", "verify", str(cid))
        assert verified.exit_code == 0 and "verifies" in verified.output, verified.output
        reserve = cli(config_path, "competitions", "reserve", str(cid))
        assert reserve.exit_code == 0 and "reserve 1 wins" in reserve.output
        assert (set(MEMBERS[:2]) - {winner}).pop() in reserve.output
        none_left = cli(config_path, "competitions", "reserve", str(cid))
        assert none_left.exit_code == 1 and "no reserve left" in none_left.output
    with store.session() as s:  # tamper with the published list: verify fails, exit 1
        comp = s.get(Competition, cid)
        assert comp is not None
        comp.entrants = json.dumps(list(reversed(json.loads(comp.entrants))))
        s.add(comp)
    tampered = cli(config_path, "competitions", "verify", str(cid))
    assert tampered.exit_code == 1 and "FAIL" in tampered.output
    assert "does not verify" in tampered.output
    missing = cli(config_path, "competitions", "verify", "999")
    assert missing.exit_code == 1 and "no competition 999" in missing.output


def test_start_refuses_a_bad_closing_time(store: Store, config_path: Path) -> None:
    make_list(store, "demo", members=MEMBERS)
    bad = cli(config_path, "competitions", "start", "demo", "--prize", "p", "--closes", "soon")
    assert bad.exit_code == 1 and "next Friday 12:00" in bad.output
    past = cli(config_path, "competitions", "start", "demo", "--prize", "p", "--closes",
               "2020-01-01T12:00")
    assert past.exit_code == 1 and "has passed" in past.output


def test_cancel_calls_off_an_open_competition_once(store: Store, config_path: Path,
                                                   sink: SmtpSink) -> None:
    make_list(store, "demo", moderators=(MOD,), members=MEMBERS)
    started = cli(config_path, "competitions", "start", "demo", "--prize", "a mug",
                  "--closes", "next Friday 12:00")
    cid = int(started.output.strip())
    cfg = config_mod.load(config_path, env={})
    with running(cfg, store) as server:
        server.drain()
        sink.messages.clear()
        cancelled = cli(config_path, "competitions", "cancel", str(cid))
        assert cancelled.exit_code == 0 and f"cancelled competition {cid}" in cancelled.output
        assert server.app.worker is not None
        server.app.worker.wake()
        def told() -> list[str]:
            return sorted(r for m in list(sink.messages) if b"is cancelled" in m.data
                          for r in m.rcpt_tos)

        # Every member's copy, each once: the copies go over several connections, so the
        # first to arrive says nothing of the others.
        wait_until(lambda: len(told()) >= 1 + len(MEMBERS), what="the list told")
        server.drain()
        assert told() == sorted((MOD, *MEMBERS))
        again = cli(config_path, "competitions", "cancel", str(cid))
        assert again.exit_code == 1 and "is cancelled: only an open" in again.output
        drawn = cli(config_path, "competitions", "draw", str(cid), "--now")
        assert drawn.exit_code == 1 and "cannot be drawn again" in drawn.output
    with store.session() as s:
        comp = s.get(Competition, cid)
        assert comp is not None and comp.state == "cancelled" and not comp.picks
    missing = cli(config_path, "competitions", "cancel", "999")
    assert missing.exit_code == 1 and "no competition 999" in missing.output
