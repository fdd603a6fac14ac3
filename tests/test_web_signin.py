"""Signing in by mail, over HTTP against the running server: the one-time link (single use,
expiring, only for members), the session cookie, and the member's page of lists."""

from __future__ import annotations

import re
from datetime import timedelta

from listserv import links, signin
from listserv.lists import find
from listserv.models import utcnow
from listserv.store import Store
from listserv.subscriptions import add_member, find_subscription
from listserv.web.signin import COOKIE
from tests.harness import make_list
from tests.smtpsink import SmtpSink
from tests.web_harness import Site, body_text, mails_to

ANN = "ann@example.org"


def join(store: Store, email: str, list_name: str = "demo") -> None:
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        add_member(s, ml, email, verified=True)


def mailed_link(site: Site, sink: SmtpSink, email: str) -> str:
    site.server.drain()
    mails = [m for m in mails_to(sink, email) if str(m["Subject"]).startswith("Sign in")]
    assert mails, f"no sign-in link was mailed to {email}"
    found = re.search(r"https://lists\.example\.org/signin/\S+", body_text(mails[-1]))
    assert found
    return site.local(found.group(0))


def cookie_of(response: object) -> str:
    header = response.headers["set-cookie"]  # type: ignore[attr-defined]
    assert "HttpOnly" in header and "SameSite=lax" in header and "Secure" in header, header
    value = re.match(rf"{COOKIE}=([^;]+)", header)
    assert value, header
    return value.group(1).strip('"')


def test_a_member_signs_in_once_and_sees_their_lists(site: Site, sink: SmtpSink,
                                                     store: Store) -> None:
    make_list(store, "tools", description="Tools talk")
    join(store, ANN)
    join(store, ANN, "tools")
    asked = site.post("/signin", data={"email": ANN})
    assert asked.status_code == 200 and "Check your mailbox" in asked.text
    link = mailed_link(site, sink, ANN)
    page = site.get(link)  # a mail scanner, or the person: nothing happens yet
    assert page.status_code == 200 and "set-cookie" not in page.headers and ANN in page.text
    used = site.post(link)
    assert used.status_code == 303 and used.headers["location"] == "/me"
    session = cookie_of(used)
    me = site.get("/me", headers={"Cookie": f"{COOKIE}={session}"})
    assert me.status_code == 200 and ANN in me.text
    assert "demo" in me.text and "Tools talk" in me.text
    settings = re.findall(r'href="(/lists/tools/delivery/[^"]+)"', me.text)
    assert settings == [links.delivery_url("", store.secret(), "tools", ANN)]
    assert site.post(settings[0], data={"mode": "plain"}).status_code == 200
    with store.session() as s:
        ml = find(s, "tools")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, ANN)
        assert sub is not None and sub.delivery_mode == "plain"
    again = site.post(link)
    assert again.status_code == 410 and "already been used" in again.text
    assert "set-cookie" not in again.headers
    out = site.post("/signout", headers={"Cookie": f"{COOKIE}={session}"})
    assert out.status_code == 200 and f"{COOKIE}=" in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]


def test_links_expire_and_are_only_for_what_they_were_made(site: Site, store: Store) -> None:
    join(store, ANN)
    secret = store.secret()
    old = signin.link_token(secret, ANN, utcnow() - signin.LINK_TTL - timedelta(seconds=5))
    expired = site.post(f"/signin/{old}")
    assert expired.status_code == 410 and "expired" in expired.text
    assert site.get(f"/signin/{old}").status_code == 410
    session = signin.session_value(secret, ANN, utcnow())
    not_links = [session, links.unsubscribe_token(secret, "demo", ANN), "x" * 40, "a.b"]
    for token in not_links:
        assert site.post(f"/signin/{token}").status_code == 410, token
    fresh = signin.link_token(secret, ANN, utcnow())
    not_sessions = [fresh, links.unsubscribe_token(secret, "demo", ANN),
                    signin.session_value(b"another site's secret" * 2, ANN, utcnow()),
                    signin.session_value(secret, ANN, utcnow() - signin.SESSION_TTL * 2)]
    for value in not_sessions:
        me = site.get("/me", headers={"Cookie": f"{COOKIE}={value}"})
        assert me.status_code == 401 and "sign in" in me.text.lower(), value
    assert site.get("/me").status_code == 401


def test_strangers_get_the_same_answer_and_no_mail(site: Site, sink: SmtpSink) -> None:
    asked = site.post("/signin", data={"email": "stranger@example.net"})
    assert asked.status_code == 200 and "Check your mailbox" in asked.text
    site.server.drain()
    assert mails_to(sink, "stranger@example.net") == []
    assert site.post("/signin", data={"email": "nonsense"}).status_code == 400


def test_a_few_links_a_day_per_address(site: Site, sink: SmtpSink, store: Store) -> None:
    join(store, ANN)
    for i in range(signin.MAX_LINKS_PER_DAY + 2):
        asked = site.post("/signin", data={"email": ANN},
                          headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert asked.status_code == 200
    site.server.drain()
    assert len(mails_to(sink, ANN)) == signin.MAX_LINKS_PER_DAY


def test_two_clicks_at_once_sign_in_once(site: Site, store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    join(store, ANN)
    path = f"/signin/{signin.link_token(store.secret(), ANN, utcnow())}"

    def click(_: int) -> int:
        with httpx.Client(base_url=site.url, timeout=30) as client:
            return client.post(path).status_code

    with ThreadPoolExecutor(6) as pool:
        answers = sorted(pool.map(click, range(6)))
    assert answers == [303] + [410] * 5
