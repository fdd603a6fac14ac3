"""The events door in Discord, through the wire: ``/event add`` (moderators) announces the
event to the list and posts a card with Attend / Leave buttons in the list's channel; a press
by a linked member attends (or joins the waiting list); ``/event attendees`` lists them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from listserv import events
from listserv.models import Event
from listserv.store import Store
from tests.discord_double import ThreadedDouble
from tests.harness import make_list, parse, wait_until
from tests.smtpsink import SmtpSink
from tests.test_bot_commands import LINKED, MOD, UNLINKED, _link, bot_server, custom_ids
from tests.test_bot_links import answer_text
from tests.test_bot_moderation import MEMBERS, MOD_USER, OTHER_USER

ADD = {"title": "Social media cafe", "start": "2030-09-03T09:30", "end": "2030-09-03T11:00",
       "where": "Ripley library", "capacity": 1}


def _card(threaded: ThreadedDouble, channel: str) -> dict[str, object]:
    double = threaded.double
    [posted] = threaded.call(double.wait_for("POST", f"/channels/{channel}/messages"))
    return posted.body  # type: ignore[no-any-return]


def test_event_add_card_and_buttons(tmp_path: Path, db_url: str, sink: SmtpSink,
                                    store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    _link(store, LINKED, MEMBERS[1])
    _link(store, OTHER_USER, MEMBERS[0])
    with bot_server(tmp_path, db_url, sink, store) as (bot, server):
        refusal = bot.ask("event", UNLINKED, ADD, sub="add")
        assert "for moderators" in refusal
        assert "in the future" in bot.ask("event", MOD_USER, {**ADD, "start": "2001-01-01T10:00",
                                                              "end": "2001-01-01T11:00"},
                                          sub="add", roles=MOD)
        text = bot.ask("event", MOD_USER, ADD, sub="add", roles=MOD)
        with store.session() as s:
            [event] = s.exec(select(Event)).all()
            event_id = event.id
        assert text == f"Event {event_id} announced to demo."
        channel = bot.double.channels["demo-list"]
        body = _card(bot.threaded, channel)
        assert f"Event {event_id}: Social media cafe" in str(body["content"])
        card = bot.double.card(str(body["content"]), body["components"])  # type: ignore[arg-type]
        assert custom_ids(card) == [f"cr:event:attend:{event_id}", f"cr:event:leave:{event_id}"]
        [scheduled] = bot.run(bot.double.wait_for(
            "POST", f"/guilds/{bot.double.guild_id}/scheduled-events"))
        assert scheduled.body["name"] == "Social media cafe"
        assert scheduled.body["entity_type"] == 3  # external: a place, not a voice channel
        assert scheduled.body["entity_metadata"] == {"location": "Ripley library"}
        start = datetime.fromisoformat(scheduled.body["scheduled_start_time"])
        assert start == datetime(2030, 9, 3, 8, 30, tzinfo=UTC)  # 9.30 in Ripley (BST)
        wait_until(lambda: sorted(r for m in sink.messages if b"Social media cafe" in m.data
                                  for r in m.rcpt_tos) == sorted(MEMBERS),
                   what="the announcement mailed to the members")

        assert "/link" in answer_text(bot.press(f"cr:event:attend:{event_id}", UNLINKED, card))
        coming = answer_text(bot.press(f"cr:event:attend:{event_id}", LINKED, card))
        assert coming == f"{MEMBERS[1]} is coming to event {event_id} (Social media cafe)"
        waiting = answer_text(bot.press(f"cr:event:attend:{event_id}", OTHER_USER, card))
        assert "waiting list" in waiting
        listed = bot.ask("event", MOD_USER, {"event_id": event_id}, sub="attendees", roles=MOD)
        assert listed.splitlines()[1:] == [f"1. {MEMBERS[1]}", f"2. {MEMBERS[0]} (waiting)"]
        assert "for moderators" in bot.ask("event", LINKED, {"event_id": event_id},
                                           sub="attendees")

        left = answer_text(bot.press(f"cr:event:leave:{event_id}", LINKED, card))
        assert "no longer on the list" in left
        wait_until(lambda: any(m.rcpt_tos == (MEMBERS[0],) and
                               "You have a place" in str(parse(m.data)["Subject"])
                               for m in sink.messages), what="the moved-up member told")
        with store.session() as s:
            rows = [(r.email, r.state, r.via) for r in events.attendees(s, event_id or 0)]
        assert rows == [(MEMBERS[0], "attending", "discord")]
        server.drain()


def test_without_the_permission_the_card_still_goes(tmp_path: Path, db_url: str,
                                                    sink: SmtpSink, store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        bot.double.refuse_scheduled_events = True
        text = bot.ask("event", MOD_USER, ADD, sub="add", roles=MOD)
        assert text.startswith("Event ") and text.endswith(" announced to demo.")
        body = _card(bot.threaded, bot.double.channels["demo-list"])
        assert "Social media cafe" in str(body["content"])
        bot.run(bot.double.wait_for("POST", f"/guilds/{bot.double.guild_id}/scheduled-events"))
