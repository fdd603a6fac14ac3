"""Events through the real doors: the announcement reaches members over SMTP with a calendar
file that parses and a link of their own; attending by link and by mail; the waiting list;
the reminder once. On a fixed clock (``NOW``), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
from sqlmodel import select

from digests import jobs
from digests.build import collect
from listserv import config as config_mod
from listserv import events, links
from listserv.event_mail import attend_purpose
from listserv.lists import find
from listserv.models import Event, EventAttendee, MessageStatus, utcnow
from listserv.models import Message as Stored
from listserv.store import Store
from listserv.subscriptions import is_member
from tests.harness import DOMAIN, Running, mail, make_list, parse, running, write_config
from tests.smtpsink import SmtpSink
from tests.web_harness import text_of as text_of_page
from tests.web_harness import wait_for_text

NOW = datetime(2030, 9, 1, 8, 0, tzinfo=UTC)  # the doors use the real clock: keep ahead of it
START = datetime(2030, 9, 3, 8, 30, tzinfo=UTC)  # 9.30 in Ripley (BST)
ANN, BEN, CAT = "ann@council.gov.uk", "ben@council.gov.uk", "cat@council.gov.uk"
MOD = "mod@council.gov.uk"
OUTSIDER = "eve@elsewhere.example"


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, "demo", moderators=(MOD,), members=(ANN, BEN, CAT))
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
    with running(config_mod.load(path, env={}), store) as srv:
        yield srv


def add_event(server: Running, *, capacity: int | None = 1) -> int:
    with server.store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        draft = events.Draft(title="Breakfast meeting for councils", starts_at=START,
                             ends_at=START + timedelta(hours=3), timezone="Europe/London",
                             location="Ripley Town Hall", capacity=capacity,
                             booking_url="https://example.org/book",
                             description="A free breakfast meeting.\nBook yourself a place.")
        assert events.draft_problem(draft, NOW) is None
        event = events.create(s, server.cfg, ml, draft, actor=MOD, now=NOW)
        assert event.id is not None
        event_id = event.id
    server.app.worker.wake()  # type: ignore[union-attr]
    server.drain()
    return event_id


def mails_to(sink: SmtpSink, rcpt: str, subject: str = "") -> list[Message]:
    found = [parse(m.data) for m in sink.messages if m.rcpt_tos == (rcpt,)]
    return [m for m in found if subject in str(m["Subject"])]


def text_of(msg: Message) -> str:
    return "\n".join(p.get_payload(decode=True).decode() for p in msg.walk()
                     if p.get_content_type() == "text/plain")


def attend_link(msg: Message) -> str:
    found = re.search(r"https://lists\.example\.org(/lists/demo/events/\d+/attend/\S+)",
                      text_of(msg))
    assert found, text_of(msg)
    return found.group(1)


def test_announcement_is_a_list_post_with_an_ics_and_a_link_per_member(
        server: Running, sink: SmtpSink) -> None:
    event_id = add_event(server)
    for member in (ANN, BEN, CAT, MOD):
        [msg] = mails_to(sink, member, "Breakfast meeting")
        assert msg["Subject"] == "[demo] Event: Breakfast meeting for councils"
        assert msg["List-Id"].endswith(f"<demo.{DOMAIN}>")
        assert "Ripley Town Hall" in text_of(msg) and "09:30 to 12:30" in text_of(msg)
        [ics] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        assert ics.get_filename() == f"event-{event_id}.ics"
        cal = icalendar.Calendar.from_ical(ics.get_payload(decode=True))
        [ve] = cal.walk("VEVENT")
        assert str(ve["SUMMARY"]) == "Breakfast meeting for councils"
        assert ve.decoded("DTSTART") == START and ve.decoded("DTEND") == START + timedelta(hours=3)
        assert ve["DTSTART"].params["TZID"] == "Europe/London"
        assert str(ve["LOCATION"]) == "Ripley Town Hall"
        assert cal.walk("VTIMEZONE"), "the zone the times name is in the file"
        token = attend_link(msg).rsplit("/", 1)[1]
        secret = server.store.secret()
        assert links.check_unsubscribe_token(secret, "demo", token,
                                             attend_purpose(event_id)) == member
        assert links.check_unsubscribe_token(secret, "demo", token) is None  # not an unsub link
    with server.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None and event.message_pk is not None
        stored = s.get(Stored, event.message_pk)
        assert stored is not None and stored.status == MessageStatus.ACCEPTED.value
        assert stored.thread_id is not None  # archived like any post
        assert b"@@member-token:" in stored.raw  # no member's token in the archive


def test_attend_by_mail_waiting_list_moves_up_and_is_told(server: Running,
                                                          sink: SmtpSink) -> None:
    event_id = add_event(server, capacity=1)
    request = f"demo-request@{DOMAIN}"
    server.send(ANN, request, mail(ANN, request, f"attend {event_id}"))
    server.send(BEN, request, mail(BEN, request, "", body=f"attend {event_id}\n"))
    server.send(OUTSIDER, request, mail(OUTSIDER, request, f"attend {event_id}"))
    server.drain()
    assert "is coming to event" in text_of(mails_to(sink, ANN, "Results")[-1])
    assert "waiting list" in text_of(mails_to(sink, BEN, "Results")[-1])
    assert "only members" in text_of(mails_to(sink, OUTSIDER, "Results")[-1])
    with server.store.session() as s:
        rows = [(r.email, r.state) for r in events.attendees(s, event_id)]
    assert rows == [(ANN, "attending"), (BEN, "waiting")]

    server.send(ANN, request, mail(ANN, request, f"leave {event_id}"))
    server.drain()
    assert "no longer on the list" in text_of(mails_to(sink, ANN, "Results")[-1])
    [told] = mails_to(sink, BEN, "You have a place")
    assert "Breakfast meeting" in text_of(told)
    with server.store.session() as s:
        rows = [(r.email, r.state) for r in events.attendees(s, event_id)]
        # "leave N" is about the event: Ann is still a member of the list.
        assert is_member(s, 1, ANN)
    assert rows == [(BEN, "attending")]


def test_reminder_goes_once_to_those_attending(server: Running, sink: SmtpSink) -> None:
    event_id = add_event(server, capacity=1)
    with server.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None
        events.attend(s, server.cfg, event, ANN, via="test", now=NOW)
        events.attend(s, server.cfg, event, BEN, via="test", now=NOW)  # waiting
    with server.store.session() as s:
        assert events.send_reminders(s, server.cfg, NOW) == 0  # two days ahead: not yet
    day_before = START - timedelta(hours=20)
    with server.store.session() as s:
        assert events.send_reminders(s, server.cfg, day_before) == 1
    with server.store.session() as s:  # as after a restart: the reminder is recorded
        assert events.send_reminders(s, server.cfg, day_before + timedelta(hours=1)) == 0
    server.app.worker.wake()  # type: ignore[union-attr]
    server.drain()
    assert len(mails_to(sink, ANN, "Tomorrow")) == 1
    assert mails_to(sink, BEN, "Tomorrow") == []


def test_cancelling_tells_everyone_on_the_list(server: Running, sink: SmtpSink) -> None:
    event_id = add_event(server, capacity=1)
    with server.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None
        events.attend(s, server.cfg, event, ANN, via="test", now=NOW)
        events.attend(s, server.cfg, event, BEN, via="test", now=NOW)
        assert events.cancel(s, server.cfg, event, actor=MOD, now=NOW) == 2
    server.app.worker.wake()  # type: ignore[union-attr]
    server.drain()
    for who in (ANN, BEN):
        [msg] = mails_to(sink, who, "Cancelled")
        [ics] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        [ve] = icalendar.Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
        assert str(ve["STATUS"]) == "CANCELLED" and int(ve["SEQUENCE"]) == 1
    with server.store.session() as s:
        assert events.upcoming(s, 1, NOW) == []
        assert len(s.exec(select(EventAttendee)).all()) == 2


def test_attend_by_the_link_in_the_announcement(server: Running, sink: SmtpSink) -> None:
    event_id = add_event(server, capacity=1)
    ann_link = attend_link(mails_to(sink, ANN, "Breakfast")[0])
    ben_link = attend_link(mails_to(sink, BEN, "Breakfast")[0])
    with httpx.Client(base_url=server.web_url, timeout=30) as web:
        page = web.get(ann_link)
        assert page.status_code == 200
        assert "Breakfast meeting for councils" in page.text and ANN in page.text
        assert 'method="post"' in page.text and "I am coming" in page.text
        with server.store.session() as s:
            assert events.attendees(s, event_id) == []  # a GET changes nothing
        done = web.post(ann_link)
        assert done.status_code == 200 and "You are coming" in done.text
        assert "already coming" in web.post(ann_link).text
        assert "Join the waiting list" in web.get(ben_link).text
        waiting = web.post(ben_link)
        assert "You are on the waiting list" in waiting.text
        forged = ben_link.replace(f"/events/{event_id}/", f"/events/{event_id + 1}/")
        assert web.get(forged).status_code == 404
        assert web.post(ann_link[:-3] + "abc").status_code == 404
    with server.store.session() as s:
        rows = [(r.email, r.state, r.via) for r in events.attendees(s, event_id)]
    assert rows == [(ANN, "attending", "web"), (BEN, "waiting", "web")]
    with httpx.Client(base_url=server.web_url, timeout=30) as web:
        assert "I can no longer come" in web.get(ann_link).text
        left = web.post(ann_link, data={"action": "leave"})
        assert left.status_code == 200 and "no longer on the list" in left.text
    server.drain()
    assert len(mails_to(sink, BEN, "You have a place")) == 1
    with server.store.session() as s:
        assert [(r.email, r.state) for r in events.attendees(s, event_id)] == [
            (BEN, "attending")]


def test_calendar_feed_lists_the_coming_events(server: Running) -> None:
    first = add_event(server, capacity=None)
    second = add_event(server, capacity=None)
    with server.store.session() as s:
        event = s.get(Event, second)
        assert event is not None
        events.cancel(s, server.cfg, event, actor=MOD, now=NOW)
    with httpx.Client(base_url=server.web_url, timeout=30) as web:
        feed = web.get("/lists/demo/events.ics")
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("text/calendar")
        assert web.get("/lists/nope/events.ics").status_code == 404
    cal = icalendar.Calendar.from_ical(feed.content)
    with server.store.session() as s:
        kept = s.get(Event, first)
        assert kept is not None
        uid = kept.uid
    assert [str(ve["UID"]) for ve in cal.walk("VEVENT")] == [uid]
    assert str(cal["X-WR-CALNAME"]) == "demo events"
    assert b"@council.gov.uk" not in feed.content  # no attendee, no member address


def test_the_scheduled_job_reminds_once_across_restarts(server: Running, sink: SmtpSink) -> None:
    soon = utcnow().replace(microsecond=0) + timedelta(hours=20)
    with server.store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        event = events.create(s, server.cfg, ml, events.Draft(
            title="Social media cafe", starts_at=soon, ends_at=soon + timedelta(hours=2),
            timezone="Europe/London"), actor=MOD, now=utcnow())
        events.attend(s, server.cfg, event, CAT, via="test", now=utcnow())
    wake = server.app.worker.wake  # type: ignore[union-attr]
    assert jobs.remind_events(server.store, server.cfg, wake) == 1
    # A second process (or this one after a restart) finds the reminder recorded.
    assert jobs.remind_events(server.store, server.cfg, wake) == 0
    server.drain()
    [msg] = mails_to(sink, CAT, "Tomorrow")
    assert "Social media cafe" in text_of(msg)


def test_the_digest_lists_events_until_they_have_happened(server: Running) -> None:
    event_id = add_event(server, capacity=None)
    with server.store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        before = collect(s, ml, server.cfg, NOW - timedelta(days=7), NOW, volume=1, number=1)
        during = collect(s, ml, server.cfg, NOW, START + timedelta(hours=1), volume=1, number=2)
        after = collect(s, ml, server.cfg, NOW, START + timedelta(hours=4), volume=1, number=3)
        event = s.get(Event, event_id)
        announced = s.get(Stored, event.message_pk) if event and event.message_pk else None
        assert announced is not None
    [item] = before.upcoming
    assert item.title == "Breakfast meeting for councils" and item.when == START
    assert item.url == f"https://lists.example.org/lists/demo/threads/{announced.thread_id}"
    assert item.detail == "Ripley Town Hall"
    assert [u.title for u in during.upcoming] == [item.title]  # until it has ended
    assert after.upcoming == ()


def test_changing_tells_those_attending_and_more_places_move_people_up(
        server: Running, sink: SmtpSink) -> None:
    event_id = add_event(server, capacity=1)
    with server.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None
        events.attend(s, server.cfg, event, ANN, via="test", now=NOW)
        events.attend(s, server.cfg, event, BEN, via="test", now=NOW)  # waiting
        draft = replace(events.as_draft(event), location="Ripley library", capacity=2)
        assert events.change(s, server.cfg, event, draft, actor=MOD, now=NOW) == [
            "location", "capacity"]
        assert events.change(s, server.cfg, event, draft, actor=MOD, now=NOW) == []
    server.app.worker.wake()  # type: ignore[union-attr]
    server.drain()
    [changed] = mails_to(sink, ANN, "Changed")
    assert "Ripley library" in text_of(changed)
    [ics] = [p for p in changed.walk() if p.get_content_type() == "text/calendar"]
    [ve] = icalendar.Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
    assert int(ve["SEQUENCE"]) == 1 and str(ve["LOCATION"]) == "Ripley library"
    assert mails_to(sink, BEN, "Changed") == []  # was waiting when it changed
    assert len(mails_to(sink, BEN, "You have a place")) == 1  # the second place is Ben's


def test_attend_in_the_browser(server: Running, sink: SmtpSink, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    event_id = add_event(server, capacity=5)
    browser.get(server.web_url + attend_link(mails_to(sink, CAT, "Breakfast")[0]))
    assert "Breakfast meeting for councils" in text_of_page(browser, "h1")
    browser.find_element(By.XPATH, "//button[text()='I am coming']").click()
    wait_for_text(browser, "h1", "You are coming")
    with server.store.session() as s:
        assert [(r.email, r.via) for r in events.attendees(s, event_id)] == [(CAT, "web")]
