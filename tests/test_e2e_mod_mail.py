"""Moderators' tools by mail, through real SMTP: ``event add`` / ``competition start`` /
``schedule add`` to LIST-request create nothing until the moderator's own address confirms
(reply, ``confirm TOKEN`` to LIST-request, or the web page); then the event is announced with
its .ics. A forged request creates nothing; non-moderators are refused; bad fields are
answered. SQLite, and PostgreSQL where configured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import httpx
import icalendar
import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv import mod_mail
from listserv.mod_tools import Tool
from listserv.models import Competition, Event, ScheduledPost
from listserv.store import Store
from tests.harness import DOMAIN, Running, mail, make_list, parse, running, write_config
from tests.smtpsink import SmtpSink

MOD = "mod@council.gov.uk"
ANN, GUEST = "ann@council.gov.uk", "guest@council.gov.uk"
REQUEST = f"demo-request@{DOMAIN}"
EVENT_BODY = """Title: Breakfast meeting for councils
Start: 2030-09-03T09:30
End: 2030-09-03T12:30
Timezone: Europe/London
Where: Ripley Town Hall
Booking: https://example.org/book
Capacity: 30

A free breakfast meeting.
Book yourself a place.
"""


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, "demo", moderators=(MOD,), members=(ANN, GUEST))
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
    with running(config_mod.load(path, env={}), store) as srv:
        yield srv


def mails_to(sink: SmtpSink, rcpt: str, subject: str = "") -> list[Message]:
    found = [parse(m.data) for m in sink.messages if m.rcpt_tos == (rcpt,)]
    return [m for m in found if subject in str(m["Subject"])]


def text_of(msg: Message) -> str:
    return "\n".join(p.get_payload(decode=True).decode() for p in msg.walk()
                     if p.get_content_type() == "text/plain")


def ask(server: Running, sender: str, subject: str, body: str) -> None:
    server.send(sender, REQUEST, mail(sender, REQUEST, subject, body))
    server.drain()


def confirmation(sink: SmtpSink, rcpt: str) -> Message:
    found = mails_to(sink, rcpt, "confirm ")
    assert found, [str(parse(m.data)["Subject"]) for m in sink.messages]
    return found[-1]


def count(store: Store, model: type) -> int:
    with store.session() as s:
        return len(s.exec(select(model)).all())


def test_event_add_by_mail_is_created_when_confirmed_by_reply(server: Running,
                                                              sink: SmtpSink) -> None:
    ask(server, MOD, "event add", EVENT_BODY)
    assert count(server.store, Event) == 0  # nothing before the moderator's address says yes
    asked = confirmation(sink, MOD)
    assert "Breakfast meeting for councils" in text_of(asked)
    assert "Ripley Town Hall" in text_of(asked) and "09:30" in text_of(asked)
    assert "a confirmation request was sent" in text_of(mails_to(sink, MOD, "Results")[-1])
    assert mails_to(sink, ANN) == []  # nothing announced yet
    # The moderator replies to the confirmation (its Reply-To is LIST-confirm+TOKEN).
    reply_to = str(asked["Reply-To"])
    assert reply_to.startswith("demo-confirm+")
    server.send(MOD, reply_to, mail(MOD, reply_to, f"Re: {asked['Subject']}", "yes\n"))
    server.drain()
    with server.store.session() as s:
        [event] = s.exec(select(Event)).all()
        assert (event.title, event.location, event.capacity) == (
            "Breakfast meeting for councils", "Ripley Town Hall", 30)
        assert event.description == "A free breakfast meeting.\nBook yourself a place."
        assert event.timezone == "Europe/London" and event.created_by == MOD
        assert event.starts_at.isoformat() == "2030-09-03T08:30:00+00:00"  # 09:30 BST
    [announced] = mails_to(sink, ANN, "Event: Breakfast meeting")
    [ics] = [p for p in announced.walk() if p.get_content_type() == "text/calendar"]
    [ve] = icalendar.Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
    assert str(ve["SUMMARY"]) == "Breakfast meeting for councils"
    assert str(ve["LOCATION"]) == "Ripley Town Hall"
    assert len(mails_to(sink, MOD, "Done: event")) == 1
    # The same confirmation again does nothing more.
    server.send(MOD, reply_to, mail(MOD, reply_to, "again", "yes\n"))
    server.drain()
    assert count(server.store, Event) == 1


def test_a_forged_request_without_confirmation_creates_nothing(server: Running,
                                                               sink: SmtpSink) -> None:
    forger = "mallory@elsewhere.example"
    # From says the moderator; the envelope is the forger's: the confirmation goes to MOD.
    server.send(forger, REQUEST, mail(MOD, REQUEST, "event add", EVENT_BODY))
    server.drain()
    assert count(server.store, Event) == 0
    assert len(mails_to(sink, MOD, "confirm ")) == 1
    assert mails_to(sink, forger) == []
    assert mails_to(sink, ANN) == []


def test_a_non_moderator_is_refused(server: Running, sink: SmtpSink) -> None:
    ask(server, ANN, "event add", EVENT_BODY)
    [reply] = mails_to(sink, ANN, "Results")
    assert "only moderators of demo" in text_of(reply)
    assert mails_to(sink, ANN, "confirm ") == []
    assert count(server.store, Event) == 0


def test_bad_fields_are_answered_and_nothing_is_kept(server: Running, sink: SmtpSink) -> None:
    ask(server, MOD, "", "event add\nTitle: Cafe\nStart: tomorrowish\nEnd: 2030-09-03T12:30\n")
    [reply] = mails_to(sink, MOD, "Results")
    assert "Start:" in text_of(reply) and "'tomorrowish' is not a time" in text_of(reply)
    assert mails_to(sink, MOD, "confirm ") == []
    ask(server, MOD, "event add", "Title: Cafe\nColour: blue\n")
    assert "not understood: Colour" in text_of(mails_to(sink, MOD, "Results")[-1])


def test_competition_start_confirmed_by_request_command(server: Running,
                                                        sink: SmtpSink) -> None:
    ask(server, MOD, "competition start",
        "Prize: a book token\nCloses: next Friday 12:00\nReserves: 2\nExclude-org: Acme\n")
    token = str(confirmation(sink, MOD)["Subject"]).split()[-1]
    assert count(server.store, Competition) == 0
    ask(server, MOD, f"confirm {token}", "")
    with server.store.session() as s:
        [comp] = s.exec(select(Competition)).all()
        assert (comp.prize, comp.reserves, comp.exclude_org) == ("a book token", 2, "Acme")
        assert comp.closes_at.astimezone().weekday() == 4  # a Friday
    assert len(mails_to(sink, ANN, "Competition: win a book token")) == 1


def test_schedule_add_for_a_member_confirmed_on_the_web(server: Running,
                                                        sink: SmtpSink) -> None:
    ask(server, MOD, "schedule add", f"At: 2030-12-09T09:00\nEvery: every second Wednesday at "
                                     f"09:00\nFrom: {GUEST}\nSubject: Guest post\n\nHello all.\n")
    link = re.search(r"https://lists\.example\.org(/confirm/[0-9a-f]+)",
                     text_of(confirmation(sink, MOD)))
    assert link, text_of(confirmation(sink, MOD))
    with httpx.Client(base_url=server.web_url, timeout=30) as web:
        page = web.get(link.group(1))
        assert page.status_code == 200 and "Guest post" in page.text
        assert count(server.store, ScheduledPost) == 0  # a GET changes nothing
        done = web.post(link.group(1))
        assert done.status_code == 200 and "Scheduled post" in done.text
    with server.store.session() as s:
        [row] = s.exec(select(ScheduledPost)).all()
        assert (row.from_address, row.subject, row.rule) == (
            GUEST, "Guest post", "every second Wednesday at 09:00")
        assert row.body == "Hello all.\n" and row.created_by == MOD


@pytest.mark.parametrize(("subject", "body", "tool", "fields"), [
    ("event add", "Title: T\nStart: S\n\nText\n-- \nsig\n", Tool.EVENT,
     {"title": "T", "start": "S", "description": "Text"}),
    ("Re: competition  start", "Prize: P\n", Tool.COMPETITION, {"prize": "P"}),
    ("event add", "event add\nTitle: T\n", Tool.EVENT, {"title": "T"}),
    ("hello", "\nschedule add\nAt: x\nfrom: a@b.c\n\nBody\n\nmore\n", Tool.SCHEDULE,
     {"at": "x", "from": "a@b.c", "body": "Body\n\nmore"}),
])
def test_parse_request(subject: str, body: str, tool: Tool, fields: dict[str, str]) -> None:
    found = mod_mail.parse_request(subject, body)
    assert found is not None and found.tool is tool and found.fields == fields


def test_other_requests_are_not_tools() -> None:
    assert mod_mail.parse_request("subscribe", "") is None
    assert mod_mail.parse_request("", "attend 3\n") is None


def made_by_mail(server: Running, sink: SmtpSink, subject: str, body: str) -> int:
    """Add an item by mail and confirm it with ``confirm TOKEN``; its id."""
    ask(server, MOD, subject, body)
    token = str(confirmation(sink, MOD)["Subject"]).split()[-1]
    ask(server, MOD, f"confirm {token}", "")
    model = {"event add": Event, "competition start": Competition,
             "schedule add": ScheduledPost}[subject]
    with server.store.session() as s:
        ids = [row.id for row in s.exec(select(model)).all()]
    return int(ids[-1])


def confirm_last(server: Running, sink: SmtpSink) -> None:
    token = str(confirmation(sink, MOD)["Subject"]).split()[-1]
    ask(server, MOD, f"confirm {token}", "")


def test_event_change_by_mail_is_made_when_confirmed_and_those_coming_are_told(
        server: Running, sink: SmtpSink) -> None:
    event_id = made_by_mail(server, sink, "event add", EVENT_BODY)
    ask(server, ANN, f"attend {event_id}", "")
    ask(server, MOD, f"event change {event_id}",
        "Start: 2030-09-03T10:00\nWhere: Ripley Library\n")
    asked = confirmation(sink, MOD)
    assert "change" in text_of(asked) and "Ripley Library" in text_of(asked)
    with server.store.session() as s:  # nothing changes before the moderator says yes
        event = s.get(Event, event_id)
        assert event is not None and event.location == "Ripley Town Hall"
    assert mails_to(sink, ANN, "Changed:") == []
    confirm_last(server, sink)
    with server.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None
        assert event.location == "Ripley Library"
        assert event.starts_at.isoformat() == "2030-09-03T09:00:00+00:00"  # 10:00 BST
        # What the mail did not name stays as it was.
        assert event.title == "Breakfast meeting for councils" and event.capacity == 30
        assert event.description == "A free breakfast meeting.\nBook yourself a place."
    [told] = mails_to(sink, ANN, "Changed: Breakfast meeting")
    assert "Ripley Library" in text_of(told)
    assert len(mails_to(sink, MOD, "Results")) >= 3


def test_event_cancel_by_mail_tells_those_coming(server: Running, sink: SmtpSink) -> None:
    event_id = made_by_mail(server, sink, "event add", EVENT_BODY)
    ask(server, ANN, f"attend {event_id}", "")
    ask(server, MOD, f"event cancel {event_id}", "")
    assert "cancel" in text_of(confirmation(sink, MOD))
    link = re.search(r"https://lists\.example\.org(/confirm/[0-9a-f]+)",
                     text_of(confirmation(sink, MOD)))
    assert link
    with httpx.Client(base_url=server.web_url, timeout=30) as web:
        page = web.get(link.group(1))  # the confirm page says what its button does
        assert page.status_code == 200
        assert f"cancel event {event_id} (\u201cBreakfast meeting for councils\u201d)" in page.text
    with server.store.session() as s:
        assert s.get(Event, event_id).state == "scheduled"  # type: ignore[union-attr]
    confirm_last(server, sink)
    with server.store.session() as s:
        assert s.get(Event, event_id).state == "cancelled"  # type: ignore[union-attr]
    assert len(mails_to(sink, ANN, "Cancelled: Breakfast meeting")) == 1


def test_change_and_cancel_by_mail_are_refused_to_others_and_for_unknown_items(
        server: Running, sink: SmtpSink) -> None:
    event_id = made_by_mail(server, sink, "event add", EVENT_BODY)
    ask(server, ANN, f"event cancel {event_id}", "")
    assert "only moderators of demo" in text_of(mails_to(sink, ANN, "Results")[-1])
    assert mails_to(sink, ANN, "confirm ") == []
    asked_before = len(mails_to(sink, MOD, "confirm "))
    ask(server, MOD, "event change 999", "Where: nowhere\n")
    assert "demo has no event 999" in text_of(mails_to(sink, MOD, "Results")[-1])
    ask(server, MOD, f"event change {event_id}", "End: 2030-09-03T08:00\n")
    assert "End:" in text_of(mails_to(sink, MOD, "Results")[-1])
    ask(server, MOD, f"event change {event_id}", "")
    assert "nothing to change" in text_of(mails_to(sink, MOD, "Results")[-1])
    assert len(mails_to(sink, MOD, "confirm ")) == asked_before
    with server.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None and event.state == "scheduled" and event.sequence == 0


def test_schedule_change_and_cancel_and_competition_cancel_by_mail(server: Running,
                                                                   sink: SmtpSink) -> None:
    post_id = made_by_mail(server, sink, "schedule add",
                           "At: 2030-12-09T09:00\nSubject: Guest post\n\nHello all.\n")
    ask(server, MOD, f"schedule change {post_id}",
        f"At: 2030-12-10T10:00\nFrom: {ANN}\nSubject: A guest post\n\nHello everyone.\n")
    confirm_last(server, sink)
    with server.store.session() as s:
        row = s.get(ScheduledPost, post_id)
        assert row is not None and (row.subject, row.body) == ("A guest post",
                                                               "Hello everyone.\n")
        assert row.from_address == ANN
        assert row.next_at.isoformat() == "2030-12-10T10:00:00+00:00"  # GMT in December
        assert row.state == "active"
    ask(server, MOD, f"schedule cancel {post_id}", "")
    confirm_last(server, sink)
    with server.store.session() as s:
        assert s.get(ScheduledPost, post_id).state == "cancelled"  # type: ignore[union-attr]
    comp_id = made_by_mail(server, sink, "competition start",
                           "Prize: a book token\nCloses: next Friday 12:00\n")
    ask(server, MOD, f"competition cancel {comp_id}", "")
    confirm_last(server, sink)
    with server.store.session() as s:
        assert s.get(Competition, comp_id).state == "cancelled"  # type: ignore[union-attr]
    assert len(mails_to(sink, ANN, "is cancelled")) + len(
        [m for m in mails_to(sink, ANN) if "there will be no draw" in text_of(m)]) >= 1


@pytest.mark.parametrize(("subject", "body", "verb", "item", "fields"), [
    ("event change 3", "Where: Library\n", "change", 3, {"where": "Library"}),
    ("", "event cancel 12\n", "cancel", 12, {}),
    ("Re: schedule  change 4", "\nBody text\n", "change", 4, {"body": "Body text"}),
    ("competition cancel 5", "", "cancel", 5, {}),
    ("event add", "Title: T\n", "add", None, {"title": "T"}),
])
def test_parse_change_and_cancel(subject: str, body: str, verb: str, item: int | None,
                                 fields: dict[str, str]) -> None:
    found = mod_mail.parse_request(subject, body)
    assert found is not None and (found.verb, found.item_id, found.fields) == (verb, item, fields)


def test_change_and_cancel_need_a_number() -> None:
    assert mod_mail.parse_request("event change", "Where: x\n") is None
    assert mod_mail.parse_request("competition change 3", "") is None  # not a tool of the mail
