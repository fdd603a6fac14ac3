"""A list's events, competitions and scheduled posts on the moderator pages, over HTTP
against the running server: create each (problems shown next to their field, values kept;
Post/Redirect/Get), cancel each, change an event and see who is coming; members, strangers
and another list's moderators are refused; a POST without the session's CSRF token does
nothing. And in a real browser: a moderator announces an event from the page and the members
get it with its .ics. SQLite, and PostgreSQL where configured."""

from __future__ import annotations

import re
from typing import Any

import icalendar
import pytest
from sqlmodel import select

from listserv import events, signin
from listserv.lists import find
from listserv.models import (
    Competition,
    Event,
    EventState,
    MailingList,
    Role,
    ScheduledPost,
    utcnow,
)
from listserv.store import Store
from listserv.subscriptions import add_member
from listserv.web.signin import COOKIE
from tests.harness import DOMAIN, mail, parse
from tests.smtpsink import SmtpSink
from tests.web_harness import Site, text_of, wait_for_text

MOD = "mod@example.org"  # the site fixture's moderator of "demo"
ANN, BEN = "ann@example.org", "ben@example.org"
OTHER_MOD = "olga@example.org"  # moderates "other" only
PAGE = "/moderate/lists/demo/"
SIGNED_AT = utcnow()
EVENT = {"title": "Social media cafe", "start": "2030-09-03T09:30", "end": "2030-09-03T12:30",
         "timezone": "", "where": "Ripley library", "booking": "", "capacity": "1",
         "description": "Bring a laptop."}


@pytest.fixture
def members(store: Store) -> None:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        for email in (ANN, BEN):
            add_member(s, ml, email, verified=True)
        other = MailingList(name="other", description="Other list")
        s.add(other)
        s.flush()
        add_member(s, other, OTHER_MOD, role=Role.MODERATOR, verified=True)


def as_(store: Store, email: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={signin.session_value(store.secret(), email, SIGNED_AT)}"}


def token_of(page: Any) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def post(site: Site, store: Store, path: str, form: dict[str, str], email: str = MOD) -> Any:
    headers = as_(store, email)
    page = site.get(PAGE, headers=headers)
    assert page.status_code == 200, page.text
    return site.post(path, headers=headers, data={"csrf": token_of(page), **form})


def rows(store: Store, model: type) -> list[Any]:
    with store.session() as s:
        return list(s.exec(select(model)).all())


def test_only_the_lists_moderators_get_the_page(site: Site, store: Store,
                                                members: None) -> None:
    assert site.get(PAGE).status_code == 401
    for who in (ANN, OTHER_MOD, "stranger@elsewhere.example"):
        assert site.get(PAGE, headers=as_(store, who)).status_code == 403, who
    page = site.get(PAGE, headers=as_(store, MOD))
    assert page.status_code == 200 and "Announce an event" in page.text
    assert "Start a competition" in page.text and "Schedule a post" in page.text
    assert 'href="/moderate/lists/demo/"' in site.get("/moderate/", headers=as_(store, MOD)).text
    assert site.get("/moderate/lists/nope/", headers=as_(store, MOD)).status_code == 404
    # Another list's moderator, with a valid token of their own session, creates nothing.
    other = site.get("/moderate/lists/other/", headers=as_(store, OTHER_MOD))
    refused = site.post(PAGE.rstrip("/") + "/events", headers=as_(store, OTHER_MOD),
                        data={"csrf": token_of(other), **EVENT})
    assert refused.status_code == 403
    assert rows(store, Event) == []


def test_a_post_without_the_sessions_csrf_token_does_nothing(site: Site, store: Store,
                                                             members: None) -> None:
    for token in ("", "forged"):
        done = site.post(PAGE.rstrip("/") + "/events", headers=as_(store, MOD),
                         data={"csrf": token, **EVENT})
        assert done.status_code == 403 and "Nothing was done" in done.text
    # A token from another person's session is not this session's.
    theirs = token_of(site.get("/moderate/lists/other/", headers=as_(store, OTHER_MOD)))
    done = site.post(PAGE.rstrip("/") + "/events", headers=as_(store, MOD),
                     data={"csrf": theirs, **EVENT})
    assert done.status_code == 403
    assert rows(store, Event) == []


def test_problems_are_shown_next_to_their_field_with_the_values_kept(
        site: Site, store: Store, members: None) -> None:
    bad = post(site, store, PAGE.rstrip("/") + "/events",
               {**EVENT, "end": "2030-09-03T08:00", "booking": "ftp://x", "title": "Kept <b>"})
    assert bad.status_code == 400
    assert re.search(r'id="event-end"[^>]*aria-invalid="true"', bad.text), bad.text
    assert 'id="event-end-error"' in bad.text and "must end after it starts" in bad.text
    assert 'id="event-booking-error"' in bad.text and "https://" in bad.text
    assert 'value="Kept &lt;b&gt;"' in bad.text  # kept, and escaped
    assert 'id="event-title-error"' not in bad.text
    closes = post(site, store, PAGE.rstrip("/") + "/competitions",
                  {"prize": "a book token", "closes": "someday"})
    assert closes.status_code == 400 and 'id="competition-closes-error"' in closes.text
    assert 'value="a book token"' in closes.text
    sched = post(site, store, PAGE.rstrip("/") + "/schedule",
                 {"at": "tomorrow 09:00", "every": "every blue moon", "from": "x@nowhere.example",
                  "subject": "S", "body": "B"})
    assert sched.status_code == 400
    assert 'id="schedule-every-error"' in sched.text and 'id="schedule-from-error"' in sched.text
    assert rows(store, Event) == [] and rows(store, Competition) == []
    assert rows(store, ScheduledPost) == []


def test_create_change_see_attendees_and_cancel_each(site: Site, store: Store, sink: SmtpSink,
                                                     members: None) -> None:
    made = post(site, store, PAGE.rstrip("/") + "/events", EVENT)
    assert made.status_code == 303
    [event] = rows(store, Event)
    assert made.headers["location"] == f"/moderate/lists/demo/?done=event-added&id={event.id}"
    assert event.created_by == f"web:{MOD}" and event.timezone == "Europe/London"
    assert event.starts_at.isoformat() == "2030-09-03T08:30:00+00:00"
    shown = site.get(made.headers["location"], headers=as_(store, MOD))
    assert f"Event {event.id} is announced" in shown.text and "Social media cafe" in shown.text

    comp = post(site, store, PAGE.rstrip("/") + "/competitions",
                {"prize": "a book token", "closes": "next Friday 12:00", "reserves": "1"})
    assert comp.status_code == 303
    [competition] = rows(store, Competition)
    assert competition.closes_at.astimezone().weekday() == 4 and competition.reserves == 1
    sched = post(site, store, PAGE.rstrip("/") + "/schedule",
                 {"at": "2030-12-09T09:00", "every": "every Monday at 09:00", "from": ANN,
                  "subject": "Guest post", "body": "Hello."})
    assert sched.status_code == 303
    [scheduled] = rows(store, ScheduledPost)
    assert (scheduled.from_address, scheduled.rule) == (ANN, "every Monday at 09:00")
    page = site.get(PAGE, headers=as_(store, MOD)).text
    assert "a book token" in page and "Guest post" in page and "every Monday at 09:00" in page

    request = f"demo-request@{DOMAIN}"  # members say they are coming by mail (one place)
    for who in (ANN, BEN):
        site.server.send(who, request, mail(who, request, f"attend {event.id}"))
    site.server.drain()
    detail = site.get(f"/moderate/lists/demo/events/{event.id}", headers=as_(store, MOD))
    assert detail.status_code == 200
    listed = re.findall(r"<tr><td>([^<]+)</td><td>(\w+)</td><td>(\w+)</td></tr>", detail.text)
    assert listed == [(ANN, "attending", "email"), (BEN, "waiting", "email")], detail.text
    assert site.get(f"/moderate/lists/demo/events/{event.id}",
                    headers=as_(store, ANN)).status_code == 403  # organisers only
    changed = site.post(f"/moderate/lists/demo/events/{event.id}/change",
                        headers=as_(store, MOD), data={"csrf": token_of(detail),
                                                       **EVENT, "capacity": "2"})
    assert changed.status_code == 303
    with store.session() as s:
        assert [(r.email, r.state) for r in events.attendees(s, event.id or 0)] == [
            (ANN, "attending"), (BEN, "attending")]

    for kind, item in (("events", event.id), ("competitions", competition.id),
                       ("schedule", scheduled.id)):
        gone = post(site, store, f"/moderate/lists/demo/{kind}/{item}/cancel", {})
        assert gone.status_code == 303, (kind, gone.text)
        again = post(site, store, f"/moderate/lists/demo/{kind}/{item}/cancel", {})
        assert again.status_code == 404, kind
    assert rows(store, Event)[0].state == EventState.CANCELLED.value
    assert rows(store, Competition)[0].state == "cancelled"
    assert rows(store, ScheduledPost)[0].state == "cancelled"
    site.server.drain()
    assert any("Cancelled" in str(parse(m.data)["Subject"]) for m in sink.messages
               if m.rcpt_tos == (BEN,))


def test_a_moderator_announces_an_event_in_a_real_browser(
        site: Site, store: Store, sink: SmtpSink, members: None, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site.url + "/")
    browser.add_cookie({"name": COOKIE, "path": "/",
                        "value": signin.session_value(store.secret(), MOD, SIGNED_AT)})
    browser.get(site.url + "/moderate/")
    browser.find_element(By.LINK_TEXT, "Events, competitions and scheduled posts on demo").click()
    wait_for_text(browser, "h1", "Events, competitions and scheduled posts on demo")
    form = browser.find_element(By.ID, "add-event")
    for name, value in {**EVENT, "end": "2030-09-03T09:00"}.items():
        if value:
            form.find_element(By.NAME, name).send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for_text(browser, "#event-end-error", "must end after it starts")
    assert browser.find_element(By.ID, "event-title").get_attribute("value") == EVENT["title"]
    assert rows(store, Event) == []
    end = browser.find_element(By.ID, "event-end")
    end.clear()
    end.send_keys(EVENT["end"])
    browser.find_element(By.CSS_SELECTOR, "#add-event button[type=submit]").click()
    wait_for_text(browser, "#notice", "is announced to the list")
    assert "Social media cafe" in text_of(browser, "#events")
    browser.refresh()  # after the redirect a reload is a GET: nothing is created twice
    wait_for_text(browser, "h1", "Events, competitions")
    assert len(rows(store, Event)) == 1
    site.server.drain()
    [announced] = [parse(m.data) for m in sink.messages if m.rcpt_tos == (ANN,)
                   and "Social media cafe" in str(parse(m.data)["Subject"])]
    [ics] = [p for p in announced.walk() if p.get_content_type() == "text/calendar"]
    [ve] = icalendar.Calendar.from_ical(ics.get_payload(decode=True)).walk("VEVENT")
    assert str(ve["SUMMARY"]) == "Social media cafe" and str(ve["LOCATION"]) == "Ripley library"
    # The 400 of the refused form is meant; anything else (CSP, scripts) is not.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "status of 400" not in e["message"]]
    assert errors == [], errors


def test_change_a_scheduled_post(site: Site, store: Store, members: None) -> None:
    made = post(site, store, PAGE.rstrip("/") + "/schedule",
                {"at": "2030-12-09T09:00", "every": "every Monday at 09:00", "from": ANN,
                 "subject": "Guest post", "body": "Hello."})
    assert made.status_code == 303
    [row] = rows(store, ScheduledPost)
    page = site.get(PAGE, headers=as_(store, MOD)).text
    form = re.search(rf'<form[^>]*id="change-post-{row.id}".*?</form>', page, re.S)
    assert form, page
    assert 'value="2030-12-09T09:00"' in form.group(0)  # the current values, local
    assert 'value="every Monday at 09:00"' in form.group(0) and ">Hello.</textarea>" in form.group(0)
    assert f'value="{ANN}"' in form.group(0)  # its sender, which may be changed too
    path = f"/moderate/lists/demo/schedule/{row.id}/change"
    new = {"at": "2030-12-10T10:00", "every": "", "subject": "A guest post",
           "body": "Hello everyone."}

    bad = post(site, store, path, {**new, "at": "someday", "subject": ""})
    assert bad.status_code == 400
    assert f'id="post-{row.id}-at-error"' in bad.text
    assert f'id="post-{row.id}-subject-error"' in bad.text
    assert 'value="someday"' in bad.text and "Hello everyone.</textarea>" in bad.text
    assert rows(store, ScheduledPost)[0].subject == "Guest post"  # nothing changed
    stranger = post(site, store, path, {**new, "from": "eve@elsewhere.example"})
    assert stranger.status_code == 400 and f'id="post-{row.id}-from-error"' in stranger.text
    assert "not a member of demo" in stranger.text
    assert rows(store, ScheduledPost)[0].from_address == ANN
    # Without this session's token, or as another list's moderator: nothing is done.
    assert site.post(path, headers=as_(store, MOD), data={"csrf": "x", **new}).status_code == 403
    other = token_of(site.get("/moderate/lists/other/", headers=as_(store, OTHER_MOD)))
    assert site.post(path, headers=as_(store, OTHER_MOD),
                     data={"csrf": other, **new}).status_code == 403

    done = post(site, store, path, new)
    assert done.status_code == 303
    assert done.headers["location"] == f"/moderate/lists/demo/?done=post-changed&id={row.id}"
    [row] = rows(store, ScheduledPost)
    assert (row.subject, row.body, row.rule) == ("A guest post", "Hello everyone.\n", "")
    assert row.next_at.isoformat() == "2030-12-10T10:00:00+00:00"  # GMT in December
    assert row.from_address == ANN and row.created_by == f"web:{MOD}"
    shown = site.get(done.headers["location"], headers=as_(store, MOD))
    assert f"Scheduled post {row.id} is changed" in shown.text
    assert post(site, store, path, {**new, "from": BEN}).status_code == 303
    assert rows(store, ScheduledPost)[0].from_address == BEN
    assert post(site, store, f"/moderate/lists/demo/schedule/{row.id}/cancel", {}
                ).status_code == 303
    assert post(site, store, path, new).status_code == 404  # cancelled: nothing to change
