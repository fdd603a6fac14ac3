"""An event made outside Discord (``commonroom events add``) is announced in Discord by the
relay worker, through the wire against the Discord API double: the card with Attend / Leave in
the list's bridged channel and a Discord scheduled event where the bot has Manage Events (else
the card alone), once, also when the bot starts after the event was made and after a restart;
``events change`` and ``events cancel`` reach the scheduled event and the card."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import discord
from sqlmodel import select

from listserv.config import Config, load
from listserv.models import DiscordRelay, Event
from listserv.store import Store
from tests.discord_double import Recorded, ThreadedDouble
from tests.harness import Running, cli, make_list, running, wait_until, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_links import discord_cfg
from tests.test_bot_moderation import MEMBERS

# What a bridged channel needs (bot/startup.py), and not Manage Events nor Create Events.
NO_EVENTS = str(discord.Permissions(
    view_channel=True, send_messages=True, read_message_history=True, manage_webhooks=True,
    create_public_threads=True, send_messages_in_threads=True, manage_messages=True).value)


def _config(tmp_path: Path, db_url: str, sink: SmtpSink, double_guild: str,
            channel: str) -> Path:
    """The config file the CLI reads: the list bridged, a bot configured (its token would
    come from the environment)."""
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
    with path.open("a", encoding="utf-8") as f:
        f.write(f'[discord]\nguild_id = "{double_guild}"\n[discord.bridges]\ndemo = "{channel}"\n')
    return path


@contextmanager
def _bot(threaded: ThreadedDouble, cfg: Config, store: Store, start: int) -> Iterator[Running]:
    """The server and its bot, connected to the double (the ``start``-th time)."""
    double = threaded.double
    with running(cfg, store) as server:
        threaded.call(double.wait_for(
            "PUT", f"/applications/{double.app_id}/guilds/{double.guild_id}/", start))
        yield server


def _cards(threaded: ThreadedDouble, channel: str) -> list[Recorded]:
    return [r for r in threaded.double.requests if r.method == "POST"
            and r.path == f"/channels/{channel}/messages"
            and str(r.body.get("content", "")).startswith("**Event ")]


def _event(store: Store) -> Event:
    with store.session() as s:
        event = s.exec(select(Event)).one()
        s.expunge(event)
        return event


def _add(path: Path) -> int:
    out = cli(path, "events", "add", "demo", "--title", "Breakfast meeting", "--start",
              "2030-09-03T09:30", "--end", "2030-09-03T12:30", "--where", "Ripley",
              "--capacity", "20")
    assert out.exit_code == 0, out.output
    return int(out.output)


def test_a_cli_event_is_announced_in_discord_once(tmp_path: Path, db_url: str, sink: SmtpSink,
                                                  store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with ThreadedDouble() as threaded:
        double = threaded.double
        channel = double.channels["demo-list"]
        path = _config(tmp_path, db_url, sink, double.guild_id, channel)
        cfg = discord_cfg(load(path, env={}), double)
        event_id = _add(path)  # while the bot is not running: the row waits for it
        with _bot(threaded, cfg, store, 1):
            [card] = wait_until(lambda: _cards(threaded, channel), what="the card")
            assert card.body["content"].startswith(f"**Event {event_id}: Breakfast meeting**")
            assert [c["custom_id"] for row in card.body["components"]
                    for c in row["components"]] == [f"cr:event:attend:{event_id}",
                                                    f"cr:event:leave:{event_id}"]
            wait_until(lambda: _event(store).discord_event_id, what="the scheduled event")
            [made] = double.scheduled_made()
            assert made.body["name"] == "Breakfast meeting"
            assert made.body["entity_metadata"] == {"location": "Ripley"}
            assert made.body["scheduled_start_time"] == "2030-09-03T08:30:00+00:00"

        with _bot(threaded, cfg, store, 2):  # a restart: nothing is announced again
            out = cli(path, "events", "change", str(event_id), "--title", "Breakfast at 10",
                      "--start", "2030-09-03T10:00")
            assert out.exit_code == 0, out.output
            scheduled = double.scheduled_events[_event(store).discord_event_id]
            wait_until(lambda: scheduled["name"] == "Breakfast at 10",
                       what="the scheduled event changed")
            assert scheduled["scheduled_start_time"] == "2030-09-03T09:00:00+00:00"
            [edited] = threaded.call(double.wait_for("PATCH", f"/channels/{channel}/messages/"))
            assert edited.body["content"].startswith(f"**Event {event_id}: Breakfast at 10**")
            assert edited.body["components"]  # the buttons stay
            second = _add(path)  # made while the bot runs: announced within a poll
            wait_until(lambda: len(_cards(threaded, channel)) == 2, what="the second card")
            out = cli(path, "events", "cancel", str(second))
            assert out.exit_code == 0, out.output
            wait_until(lambda: sorted(e["status"] for e in double.scheduled_events.values())
                       == [1, 4], what="the second scheduled event cancelled")
        assert len(_cards(threaded, channel)) == 2
        assert len(double.scheduled_made()) == 2


def test_without_manage_events_the_card_alone(tmp_path: Path, db_url: str, sink: SmtpSink,
                                              store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with ThreadedDouble(bot_permissions=NO_EVENTS) as threaded:
        double = threaded.double
        channel = double.channels["demo-list"]
        path = _config(tmp_path, db_url, sink, double.guild_id, channel)
        cfg = discord_cfg(load(path, env={}), double)
        with _bot(threaded, cfg, store, 1):
            event_id = _add(path)
            [card] = wait_until(lambda: _cards(threaded, channel), what="the card")
            assert card.body["content"].startswith(f"**Event {event_id}: Breakfast meeting**")
            assert "Ripley" in card.body["content"] and "20 places" in card.body["content"]
            out = cli(path, "events", "cancel", str(event_id))
            assert out.exit_code == 0, out.output
            [edited] = threaded.call(double.wait_for("PATCH", f"/channels/{channel}/messages/"))
            assert "Cancelled" in edited.body["content"]
        assert double.scheduled_made() == []  # not even tried
        assert _event(store).discord_event_id == ""


def test_a_restart_after_the_card_makes_only_the_scheduled_event(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    """The bot stopped after Discord had the card and before the scheduled event: the row
    records the card, so starting again writes the scheduled event and no second card."""
    make_list(store, "demo", members=MEMBERS)
    with ThreadedDouble() as threaded:
        double = threaded.double
        channel = double.channels["demo-list"]
        path = _config(tmp_path, db_url, sink, double.guild_id, channel)
        cfg = discord_cfg(load(path, env={}), double)
        event_id = _add(path)
        with store.session() as s:  # as part_sent left it after the card
            row = s.exec(select(DiscordRelay).where(DiscordRelay.event_id == event_id)).one()
            row.parts_sent, row.discord_message_ids = 1, "1234567890123456789"
            s.add(row)
        with _bot(threaded, cfg, store, 1):
            wait_until(lambda: _event(store).discord_event_id, what="the scheduled event")
        assert _cards(threaded, channel) == []
        assert len(double.scheduled_made()) == 1


def _rows(store: Store, kind: str) -> list[DiscordRelay]:
    with store.session() as s:
        rows = list(s.exec(select(DiscordRelay).where(DiscordRelay.kind == kind)))
        for row in rows:
            s.expunge(row)
        return rows


def test_a_started_scheduled_event_keeps_its_start_and_takes_the_rest(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    """Discord refuses to move the start of a scheduled event that has started (ACTIVE), and
    any edit of one that has ended: a change then leaves the start alone and sends the rest,
    the card says the new time, and the row is done, not failed; cancelling it ends it."""
    make_list(store, "demo", members=MEMBERS)
    with ThreadedDouble() as threaded:
        double = threaded.double
        channel = double.channels["demo-list"]
        path = _config(tmp_path, db_url, sink, double.guild_id, channel)
        cfg = discord_cfg(load(path, env={}), double)
        event_id = _add(path)
        with _bot(threaded, cfg, store, 1):
            discord_id = wait_until(lambda: _event(store).discord_event_id,
                                    what="the scheduled event")
            double.start_scheduled_event(discord_id)  # Discord started it at its start time
            scheduled = double.scheduled_events[discord_id]
            out = cli(path, "events", "change", str(event_id), "--title", "Breakfast, later",
                      "--start", "2030-09-03T10:00", "--end", "2030-09-03T13:00",
                      "--where", "Ripley Town Hall")
            assert out.exit_code == 0, out.output
            wait_until(lambda: scheduled["name"] == "Breakfast, later",
                       what="the started scheduled event changed")
            assert scheduled["scheduled_start_time"] == "2030-09-03T08:30:00+00:00"
            assert scheduled["scheduled_end_time"] == "2030-09-03T12:00:00+00:00"
            assert scheduled["entity_metadata"] == {"location": "Ripley Town Hall"}
            [edited] = threaded.call(double.wait_for("PATCH", f"/channels/{channel}/messages/"))
            assert edited.body["content"].startswith(f"**Event {event_id}: Breakfast, later**")
            wait_until(lambda: all(r.state == "sent" for r in _rows(store, "event-change")),
                       what="the change written")

            out = cli(path, "events", "cancel", str(event_id))
            assert out.exit_code == 0, out.output
            wait_until(lambda: scheduled["status"] == 3, what="the started event ended")
            wait_until(lambda: all(r.state == "sent" for r in _rows(store, "event-cancel")),
                       what="the cancellation written")
        refused = [r for r in double.requests if r.method == "PATCH"
                   and r.path.endswith(f"/scheduled-events/{discord_id}")
                   and "scheduled_start_time" in r.body]
        assert refused == []  # the start was never asked to move


def test_the_double_refuses_what_discord_refuses() -> None:
    from tests.discord_double import _scheduled_edit_refused

    active = {"status": 2, "scheduled_start_time": "2030-09-03T08:30:00+00:00"}
    moved = _scheduled_edit_refused(active, {"scheduled_start_time": "2030-09-03T09:00:00Z"})
    assert moved is not None and moved["code"] == 50035
    assert "scheduled_start_time" in moved["errors"]
    assert _scheduled_edit_refused(active, {"scheduled_start_time": "2030-09-03T08:30:00Z",
                                            "name": "x"}) is None
    assert _scheduled_edit_refused(active, {"status": 4})["code"] == 50035  # type: ignore[index]
    assert _scheduled_edit_refused({"status": 3}, {"name": "x"}) == {
        "message": "Cannot update a finished event", "code": 180000}
