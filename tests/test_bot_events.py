"""The events door in Discord, through the wire: ``/event add`` (moderators) announces the
event to the list, and the relay worker posts a card with Attend / Leave buttons in the list's
channel; a press by a linked member attends (or joins the waiting list); ``/event attendees``
lists them; ``/event list`` and ``/event cancel``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import col, select

from listserv import events
from listserv.models import DiscordRelay, Event
from listserv.store import Store
from tests.discord_double import ThreadedDouble
from tests.harness import make_list, parse, wait_until
from tests.smtpsink import SmtpSink
from tests.test_bot_commands import LINKED, MOD, UNLINKED, _link, bot_server, custom_ids
from tests.test_bot_links import answer_text
from tests.test_bot_moderation import MEMBERS, MOD_USER, OTHER_USER

ADD = {"title": "Social media cafe", "start": "2030-09-03T09:30", "end": "2030-09-03T11:00",
       "where": "Ripley library", "capacity": 1}


def _card(threaded: ThreadedDouble, channel: str, event_id: int | None = None
          ) -> dict[str, object]:
    """The card the bot posted in ``channel`` (for ``event_id``, else the first event's), once
    it is there; the relay also writes the announcement's thread starter into the channel."""
    double = threaded.double
    head = f"**Event {event_id}:" if event_id is not None else "**Event "

    def cards() -> list[dict[str, object]]:
        return [r.body for r in double.requests if r.method == "POST"
                and r.path == f"/channels/{channel}/messages"
                and str(r.body.get("content", "")).startswith(head)]

    return wait_until(cards, what="the event's card")[0]  # type: ignore[no-any-return]


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
        body = _card(bot.threaded, channel, event_id)
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
        wait_until(lambda: _relay_states(store) == ["sent", "sent"], what="the rows sent")
        with store.session() as s:  # refused: no scheduled event, and the row is done
            [event] = s.exec(select(Event)).all()
            assert event.discord_event_id == ""


def _relay_states(store: Store) -> list[str]:
    with store.session() as s:
        return [r.state for r in s.exec(select(DiscordRelay).order_by(col(DiscordRelay.id)))]


def test_event_list_and_cancel(tmp_path: Path, db_url: str, sink: SmtpSink,
                               store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    _link(store, LINKED, MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        assert bot.ask("event", MOD_USER, sub="list", roles=MOD) == \
            "No events are coming up on demo."
        bot.ask("event", MOD_USER, ADD, sub="add", roles=MOD)
        with store.session() as s:
            [event] = s.exec(select(Event)).all()
            event_id = event.id
        card = _card(bot.threaded, bot.double.channels["demo-list"], event_id)
        pressed = bot.double.card(str(card["content"]), card["components"])  # type: ignore[arg-type]
        assert "is coming" in answer_text(bot.press(f"cr:event:attend:{event_id}", LINKED,
                                                    pressed))
        listed = bot.ask("event", MOD_USER, sub="list", roles=MOD)
        assert listed.startswith(f"**{event_id}** · Tuesday 3 September 2030, 09:30 to 11:00 "
                                 "(Europe/London) · Social media cafe · 1/1 coming"), listed
        assert "for moderators" in bot.ask("event", LINKED, sub="list")
        assert "for moderators" in bot.ask("event", LINKED, {"id": event_id}, sub="cancel")
        with store.session() as s:
            assert events.find(s, event_id or 0).state == "scheduled"  # type: ignore[union-attr]

        [made] = bot.run(bot.double.wait_for(
            "POST", f"/guilds/{bot.double.guild_id}/scheduled-events"))
        done = bot.ask("event", MOD_USER, {"id": event_id}, sub="cancel", roles=MOD)
        assert done == f"Event {event_id} (Social media cafe) is cancelled; 1 told."
        assert bot.ask("event", MOD_USER, {"id": event_id}, sub="cancel", roles=MOD) == \
            f"Event {event_id} is already cancelled."
        double = bot.double
        wait_until(lambda: [e["status"] for e in double.scheduled_events.values()] == [4],
                   what="the Discord scheduled event cancelled (status 4, CANCELED)")
        [edited] = bot.run(double.wait_for("PATCH", f"/channels/{double.channels['demo-list']}/"
                                                    "messages/"))
        assert "Cancelled" in edited.body["content"] and edited.body["components"] == []
        wait_until(lambda: any(m.rcpt_tos == (MEMBERS[1],) and b"cancelled" in m.data.lower()
                               for m in sink.messages), what="the attendee told by mail")
        assert bot.ask("event", MOD_USER, sub="list", roles=MOD) == \
            "No events are coming up on demo."
        assert made.body["name"] == "Social media cafe"


def test_event_change(tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    _link(store, LINKED, MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        bot.ask("event", MOD_USER, ADD, sub="add", roles=MOD)
        with store.session() as s:
            [event] = s.exec(select(Event)).all()
            event_id = event.id
        card = _card(bot.threaded, bot.double.channels["demo-list"], event_id)
        pressed = bot.double.card(str(card["content"]), card["components"])  # type: ignore[arg-type]
        assert "is coming" in answer_text(bot.press(f"cr:event:attend:{event_id}", LINKED,
                                                    pressed))
        change = {"id": event_id, "start": "2030-09-03T10:00", "where": "Ripley Town Hall"}
        assert "for moderators" in bot.ask("event", LINKED, change, sub="change")
        assert bot.ask("event", MOD_USER, {"id": 999, "where": "x"}, sub="change",
                       roles=MOD) == "There is no event 999 to change."
        bad = bot.ask("event", MOD_USER, {"id": event_id, "end": "2030-09-03T08:00"},
                      sub="change", roles=MOD)
        assert bad == "Not changed: end: the event must end after it starts.", bad
        assert bot.ask("event", MOD_USER, {"id": event_id}, sub="change", roles=MOD) == \
            "Say what to change: title, start, end, tz, where, booking_url, capacity or " \
            "description."
        done = bot.ask("event", MOD_USER, change, sub="change", roles=MOD)
        assert done == (f"Event {event_id} (Social media cafe) is changed: start, where; "
                        "those coming are told."), done
        with store.session() as s:
            event = events.find(s, event_id or 0)  # type: ignore[assignment]
            assert event is not None and event.location == "Ripley Town Hall"
            assert event.starts_at == datetime(2030, 9, 3, 9, 0, tzinfo=UTC)  # 10:00 BST
            assert event.ends_at == datetime(2030, 9, 3, 10, 0, tzinfo=UTC)  # kept: 11:00 BST
            assert event.capacity == 1 and event.title == "Social media cafe"
        wait_until(lambda: any(m.rcpt_tos == (MEMBERS[1],) and "Changed: Social media cafe"
                               in str(parse(m.data)["Subject"]) for m in sink.messages),
                   what="the attendee told by mail")
