"""The held queue on the web, over HTTP against the running server: a moderator approves (once),
rejects with a reason (the sender is told by mail), discards; members, strangers and another
list's moderators are refused; forms without the session's CSRF token change nothing; a held
post's hostile HTML is shown as inert text. And in a real browser: sign in by the mailed link,
approve from the page, delivered once. SQLite, and PostgreSQL where configured."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlmodel import select

from listserv import moderation, signin
from listserv.lists import find
from listserv.models import Action, AuditEntry, Held, Message, utcnow
from listserv.store import Store
from listserv.subscriptions import add_member, find_subscription
from listserv.web.signin import COOKIE
from tests.harness import DOMAIN, mail, make_list, parse
from tests.smtpsink import SmtpSink
from tests.web_harness import Site, body_text, mails_to, wait_for_text

MOD = "mod@example.org"  # the site fixture's moderator of "demo"
MEMBERS = ("ann@example.org", "bob@example.org")
OUTSIDER = "dan@elsewhere.example"
POST = f"demo@{DOMAIN}"
RECIPIENTS = sorted((*MEMBERS, MOD))  # a moderator is subscribed too
SIGNED_AT = utcnow()  # one session per address for the whole run: its CSRF token is stable


@pytest.fixture
def members(store: Store) -> None:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        for email in MEMBERS:
            add_member(s, ml, email, verified=True)


def hold(site: Site, sink: SmtpSink, subject: str = "Can I ask about CRMs?",
         body: str = "Hello.\n", sender: str = OUTSIDER) -> int:
    """A non-member's post, held; its held id."""
    site.server.send(sender, POST, mail(sender, POST, subject, body))
    site.server.drain()
    sink.messages.clear()
    with site.server.store.session() as s:
        held = s.exec(select(Held).order_by(Held.id.desc())).first()  # type: ignore[union-attr]
        assert held is not None and held.id is not None and held.resolved_at is None
        return held.id


def as_(store: Store, email: str) -> dict[str, str]:
    """Headers that make a request from ``email``'s signed-in session."""
    return {"Cookie": f"{COOKIE}={signin.session_value(store.secret(), email, SIGNED_AT)}"}


def token_of(page: Any) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def act(site: Site, store: Store, email: str, held_id: int, verb: str, **form: str) -> Any:
    headers = as_(store, email)
    page = site.get(f"/moderate/held/{held_id}", headers=headers)
    assert page.status_code == 200, page.text
    return site.post(f"/moderate/held/{held_id}/{verb}", headers=headers,
                     data={"csrf": token_of(page), **form})


def delivered(sink: SmtpSink, subject: str) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in sink.messages
                  if str(parse(m.data)["Subject"]).startswith(f"[demo] {subject}"))


def state(store: Store, held_id: int) -> tuple[str, str]:
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None
        return held.resolution, held.resolved_by


def test_a_moderator_sees_the_queue_and_approves_once(site: Site, sink: SmtpSink, store: Store,
                                                      members: None) -> None:
    held_id = hold(site, sink)
    with store.session() as s:  # the participation policy's evidence, as the pipeline stores it
        held = s.get(Held, held_id)
        assert held is not None
        msg = s.get(Message, held.message_pk)
        assert msg is not None
        msg.policy = json.dumps({"case": "vendor", "reason": "no public source",
                                 "own_words": 42, "links": ["https://vendor.example/x"]})
        s.add(msg)
    queue = site.get("/moderate/", headers=as_(store, MOD))
    assert queue.status_code == 200 and "Can I ask about CRMs?" in queue.text
    assert f'href="/moderate/held/{held_id}"' in queue.text
    assert OUTSIDER in queue.text
    page = site.get(f"/moderate/held/{held_id}", headers=as_(store, MOD))
    assert page.status_code == 200
    for shown in ("Can I ask about CRMs?", OUTSIDER, "Hello.", "Participation policy: vendor",
                  "own words: 42", "https://vendor.example/x", "Approve", "Reject", "Discard"):
        assert shown in page.text, shown
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None and held.reason in page.text and held.rule in page.text
    done = act(site, store, MOD, held_id, "approve", future="accept")
    assert done.status_code == 200 and "approved" in done.text, done.text
    site.server.drain()
    assert delivered(sink, "Can I ask about CRMs?") == RECIPIENTS
    assert state(store, held_id) == (Action.ACCEPT.value, f"web:{MOD}")
    with store.session() as s:
        actions = [(e.actor, e.action) for e in s.exec(select(AuditEntry))]
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, OUTSIDER)
        assert sub is not None and sub.moderation == "accept"
    assert (f"web:{MOD}", "held-accept") in actions
    assert (f"web:{MOD}", "moderation-set") in actions
    # Again, from the web (a second click) or the CLI: nothing more goes out.
    again = site.post(f"/moderate/held/{held_id}/approve", headers=as_(store, MOD),
                      data={"csrf": token_of(page)})
    assert again.status_code == 409 and f"by web:{MOD}" in again.text
    with store.session() as s:
        assert not moderation.act(s, site.server.cfg, held_id, Action.DISCARD, actor="cli").ok
    shown = site.get(f"/moderate/held/{held_id}", headers=as_(store, MOD))
    assert "Already handled" in shown.text and 'name="csrf"' not in shown.text
    site.server.drain()
    assert delivered(sink, "Can I ask about CRMs?") == RECIPIENTS
    assert "Can I ask" not in site.get("/moderate/", headers=as_(store, MOD)).text


def test_reject_with_a_reason_tells_the_sender(site: Site, sink: SmtpSink, store: Store,
                                               members: None) -> None:
    held_id = hold(site, sink, "Buy our CRM")
    done = act(site, store, MOD, held_id, "reject", reason="Adverts are not allowed here.")
    assert done.status_code == 200 and "rejected" in done.text
    site.server.drain()
    told = mails_to(sink, OUTSIDER)
    assert len(told) == 1 and "Adverts are not allowed here." in body_text(told[0])
    assert delivered(sink, "Buy our CRM") == []
    assert state(store, held_id) == (Action.REJECT.value, f"web:{MOD}")


def test_discard_sends_nothing(site: Site, sink: SmtpSink, store: Store, members: None) -> None:
    held_id = hold(site, sink, "Spam spam")
    done = act(site, store, MOD, held_id, "discard")
    assert done.status_code == 200 and "discarded" in done.text
    site.server.drain()
    assert [m for m in sink.messages if "Spam spam" in str(parse(m.data)["Subject"])] == []
    assert mails_to(sink, OUTSIDER) == []
    assert state(store, held_id) == (Action.DISCARD.value, f"web:{MOD}")


def test_members_strangers_and_other_lists_moderators_are_refused(
        site: Site, sink: SmtpSink, store: Store, members: None) -> None:
    make_list(store, "tools", moderators=("tess@example.org",))
    held_id = hold(site, sink)
    assert site.get("/moderate/").status_code == 401
    assert site.get(f"/moderate/held/{held_id}").status_code == 401
    assert site.post(f"/moderate/held/{held_id}/approve").status_code == 401
    member = site.get("/moderate/", headers=as_(store, MEMBERS[0]))
    assert member.status_code == 403 and "does not moderate" in member.text
    for who in (MEMBERS[0], "tess@example.org", "stranger@example.net"):
        page = site.get(f"/moderate/held/{held_id}", headers=as_(store, who))
        assert page.status_code == 403 and "not a moderator" in page.text, who
        assert "Can I ask" not in page.text
        # Their own session's valid token does not make them a moderator of demo.
        posted = site.post(f"/moderate/held/{held_id}/approve", headers=as_(store, who),
                           data={"csrf": own_token(site, store, who)})
        assert posted.status_code == 403, who
    tools = site.get("/moderate/", headers=as_(store, "tess@example.org"))
    assert tools.status_code == 200 and "tools" in tools.text and "Can I ask" not in tools.text
    assert state(store, held_id) == ("", "")
    site.server.drain()
    assert delivered(sink, "Can I ask about CRMs?") == []


def own_token(site: Site, store: Store, email: str) -> str:
    """The CSRF token of ``email``'s own session, as a moderator page would carry it."""
    import base64
    import hashlib
    import hmac

    value = as_(store, email)["Cookie"].split("=", 1)[1]
    mac = hmac.new(store.secret(), f"csrf:{value}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def test_forms_without_the_sessions_token_change_nothing(site: Site, sink: SmtpSink,
                                                        store: Store, members: None) -> None:
    make_list(store, "tools", moderators=(MOD, "tess@example.org"))
    held_id = hold(site, sink)
    mine = as_(store, MOD)
    others = own_token(site, store, "tess@example.org")  # valid, but another session's
    for form in ({}, {"csrf": ""}, {"csrf": "x" * 24}, {"csrf": others}):
        refused = site.post(f"/moderate/held/{held_id}/approve", headers=mine, data=form)
        assert refused.status_code == 403 and "Nothing was done" in refused.text, form
    # A forged cross-site form sends the cookie (in old browsers) but cannot know the token.
    forged = site.post(f"/moderate/held/{held_id}/discard",
                       headers={**mine, "Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert state(store, held_id) == ("", "")
    page = site.get(f"/moderate/held/{held_id}", headers=mine)
    assert token_of(page) == own_token(site, store, MOD)


def test_hostile_html_in_a_held_post_is_inert(site: Site, sink: SmtpSink, store: Store) -> None:
    body = ('<script>alert("body")</script>\n<img src=x onerror="alert(1)">\n'
            '</pre><a href="javascript:alert(2)">click</a>\n')
    held_id = hold(site, sink, '<script>alert("subject")</script>', body,
                   sender="eve@elsewhere.example")
    for path in ("/moderate/", f"/moderate/held/{held_id}"):
        page = site.get(path, headers=as_(store, MOD))
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img" not in page.text, path
        assert "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;" in page.text, path
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text
    assert 'href="javascript:' not in page.text and "&lt;/pre&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_moderate_link_shows_for_moderators_only(site: Site, store: Store,
                                                    members: None) -> None:
    mod_me = site.get("/me", headers=as_(store, MOD))
    assert '<a href="/moderate/">Moderate</a>' in mod_me.text
    assert 'href="/moderate/">see the posts waiting' in mod_me.text
    assert '<a href="/moderate/">Moderate</a>' in site.get("/", headers=as_(store, MOD)).text
    member_me = site.get("/me", headers=as_(store, MEMBERS[0]))
    assert member_me.status_code == 200 and "/moderate/" not in member_me.text
    assert "/moderate/" not in site.get("/").text


def test_a_moderator_approves_in_a_real_browser(site: Site, sink: SmtpSink, store: Store,
                                                members: None, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    held_id = hold(site, sink, "Browser approval please")
    browser.get(site.url + "/signin")
    browser.find_element(By.NAME, "email").send_keys(MOD)
    browser.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait_for_text(browser, "main", "Check your mailbox")
    site.server.drain()
    mailed = [m for m in mails_to(sink, MOD) if str(m["Subject"]).startswith("Sign in")]
    link = re.search(r"https://lists\.example\.org/signin/\S+", body_text(mailed[-1]))
    assert link
    browser.get(site.local(link.group(0)))
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for_text(browser, "main", "Signed in as")
    browser.find_element(By.LINK_TEXT, "Moderate").click()
    wait_for_text(browser, "main", "Browser approval please")
    browser.find_element(By.LINK_TEXT, "Browser approval please").click()
    wait_for_text(browser, "h1", f"Held post {held_id}")
    browser.find_element(By.XPATH, "//button[text()='Approve']").click()
    wait_for_text(browser, "main", "approved")
    site.server.drain()
    assert delivered(sink, "Browser approval please") == RECIPIENTS
    browser.back()  # the form again, resent by a second click: refused, nothing more goes out
    browser.refresh()
    wait_for_text(browser, "main", "Already handled")
    site.server.drain()
    assert delivered(sink, "Browser approval please") == RECIPIENTS
    assert state(store, held_id) == (Action.ACCEPT.value, f"web:{MOD}")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_odd_requests_get_kind_pages(site: Site, sink: SmtpSink, store: Store) -> None:
    held_id = hold(site, sink)
    mine = as_(store, MOD)
    token = own_token(site, store, MOD)
    assert site.get("/moderate/held/999999", headers=mine).status_code == 404
    assert site.post("/moderate/held/999999/approve", headers=mine,
                     data={"csrf": token}).status_code == 404
    assert site.post(f"/moderate/held/{held_id}/frobnicate", headers=mine,
                     data={"csrf": token}).status_code == 404
    for verb, future in (("reject", "accept"), ("approve", "sometimes")):
        odd = site.post(f"/moderate/held/{held_id}/{verb}", headers=mine,
                        data={"csrf": token, "future": future})
        assert odd.status_code == 400 and "Future posts" in odd.text, (verb, future)
    assert site.get("/moderate/held/abc", headers=mine).status_code in (400, 404)
    assert state(store, held_id) == ("", "")


def test_the_held_notice_links_to_the_page(site: Site, sink: SmtpSink, store: Store) -> None:
    site.server.send(OUTSIDER, POST, mail(OUTSIDER, POST, "Linked from the notice"))
    site.server.drain()
    notice = next(m for m in mails_to(sink, MOD) if "Linked from the notice" in str(m["Subject"]))
    found = re.search(r"https://lists\.example\.org/moderate/held/\d+", body_text(notice))
    assert found, body_text(notice)
    page = site.get(site.local(found.group(0)), headers=as_(store, MOD))
    assert page.status_code == 200 and "Linked from the notice" in page.text
    assert site.get(site.local(found.group(0))).status_code == 401  # not signed in
