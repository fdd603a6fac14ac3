"""Several ``serve`` processes on one store with a Discord token (bot/leased.py): only the one
holding the bot's lease connects to the gateway and relays, so a post reaches Discord once; when
it stops, another takes over and relays the next post. Two Apps on one store (each its own
engine) against the Discord API double, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import relay
from listserv import leadership, leases
from listserv.config import load
from listserv.leadership import LeaseTiming
from listserv.store import Store
from tests.discord_double import ThreadedDouble
from tests.harness import Running, mail, running, wait_until, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_links import discord_cfg
from tests.test_bot_relay import FAST, JANE, POST, _members

# Fast renewals and tries (a takeover after a stop or a release takes retry_every), and a
# long lease: nothing here waits for one to run out, and a store slowed by a loaded machine
# (SQLite takes of over a second were seen with the suite beside other benches) may take up
# to ttl - 2 * renew_every to renew it without ending the bot (leadership.wait_limit).
LEASE = LeaseTiming(ttl=10.0, renew_every=0.3, retry_every=0.3)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "TIMING", FAST)
    monkeypatch.setattr(leadership, "TIMING", LEASE)


@pytest.fixture
def second_store(db_url: str, store: Store) -> Iterator[Store]:
    """The same database through another engine, as a second process has."""
    other = Store(db_url)
    yield other
    other.dispose()


def _post(server: Running, subject: str) -> None:
    server.send(JANE, POST, mail(JANE, POST, subject, f"{subject}, from Jane.\n"))


def _relayed(threaded: ThreadedDouble, count: int) -> list[str]:
    """The webhook posts' first lines once there are ``count``, then a moment to see more."""
    def posts() -> list[str]:
        return [p.content.splitlines()[0] for p in threaded.double.posted if p.webhook_id]
    wait_until(lambda: len(posts()) >= count or None, 15, f"{count} post(s) in Discord")
    time.sleep(1.0)  # several relay polls: a second relay would have written it by now
    return posts()


def _holder(store: Store) -> str | None:
    with store.read_session() as s:
        held = leases.holder(s, "discord-bot")
    return held.holder if held is not None else None


def test_one_process_runs_the_bot_and_another_takes_over(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, second_store: Store) -> None:
    _members(store)
    with ThreadedDouble(forums=("demo-list",)) as threaded:
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          threaded.double)
        first = Running(cfg, store).start()
        second = Running(cfg, second_store).start()
        try:
            assert first.app.bot is not None and second.app.bot is None
            assert first.app.leased_bot is not None
            assert _holder(store) == first.app.leased_bot.lease.holder
            _post(second, "Which LMS do you use?")  # mail may arrive at either process
            assert _relayed(threaded, 1) == ["Which LMS do you use?, from Jane."]
            assert threaded.double.identified == 1  # one gateway session for both

            first.stop()  # the holder goes: the other connects and relays from now on
            wait_until(lambda: second.app.bot is not None or None,
                       LEASE.retry_every * 10 + 10, "the second process runs the bot")
            assert threaded.double.identified == 2
            _post(second, "Moodle or Totara?")
            assert _relayed(threaded, 2) == ["Which LMS do you use?, from Jane.",
                                             "Moodle or Totara?, from Jane."]
        finally:
            second.stop()
            if first.loop.is_running():
                first.stop()


def test_two_relays_on_one_store_still_write_a_post_once(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, second_store: Store,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces: were two bots ever running (here: each under a lease of its own), the
    relay workers claim each row before writing it, so no post reaches Discord twice."""
    from bot import leased

    _members(store)
    with ThreadedDouble(forums=("demo-list",)) as threaded:
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          threaded.double)
        first = Running(cfg, store).start()
        monkeypatch.setattr(leased, "BOT_LEASE", "discord-bot-too")
        try:
            with running(cfg, second_store) as second:
                assert first.app.bot is not None and second.app.bot is not None
                for n in range(5):
                    _post(second if n % 2 else first, f"Post {n}")
                got = _relayed(threaded, 5)
                assert sorted(got) == [f"Post {n}, from Jane." for n in range(5)]
        finally:
            first.stop()


def test_a_bot_whose_gateway_gives_up_hands_over(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, second_store: Store) -> None:
    _members(store)
    with ThreadedDouble(forums=("demo-list",)) as threaded:
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          threaded.double)
        first = Running(cfg, store).start()
        second = Running(cfg, second_store).start()
        try:
            assert first.app.bot is not None and second.app.bot is None
            threaded.call(threaded.double.close_gateway(4004))  # no reconnect after this
            wait_until(lambda: second.app.bot is not None or None, 15,
                       "the second process runs the bot")
            assert first.app.bot is None and threaded.double.identified == 2
            _post(first, "Still there?")
            assert _relayed(threaded, 1) == ["Still there?, from Jane."]
        finally:  # the waiting one first: it would take the lease the holder gives up
            first.stop()
            second.stop()
