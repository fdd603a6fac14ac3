"""The web subscribe form and its embeddable snippet, over HTTP against the running server:
double opt-in, an answer that reveals nothing, the honeypot, and rate limits that hold."""

from __future__ import annotations

from sqlmodel import select

from listserv.lists import find
from listserv.models import Pending
from listserv.store import Store
from listserv.subscriptions import MAX_PENDING_PER_DAY, add_member
from listserv.web.context import SUBSCRIBE_PER_IP
from listserv.web.subscribe import subscribe_snippet
from tests.smtpsink import SmtpSink
from tests.web_harness import Site, confirm_link, mails_to

NIA = "nia@council.gov.uk"


def pending(store: Store) -> list[str]:
    with store.session() as s:
        return [p.email for p in s.exec(select(Pending)).all()]


def answer_text(html: str) -> str:
    """The page's main part with the address taken out (it is echoed back)."""
    return html.split('<main id="main" tabindex="-1">', 1)[1].split("</main>", 1)[0]


def test_the_form_is_plain_and_accessible(site: Site) -> None:
    page = site.get("/lists/demo/subscribe")
    assert page.status_code == 200 and "Join demo" in page.text
    assert '<label for="email">' in page.text and 'id="email" type="email"' in page.text
    assert 'name="website"' in page.text and 'tabindex="-1"' in page.text  # the honeypot
    assert "&lt;form method=&#34;post&#34;" in page.text  # the snippet, shown as text
    assert site.get("/lists/nope/subscribe").status_code == 404


def test_subscribing_starts_the_double_opt_in_and_changes_nothing_yet(
        site: Site, sink: SmtpSink, store: Store) -> None:
    answer = site.post("/lists/Demo/subscribe", data={"email": NIA.upper(), "name": "Nia"})
    assert answer.status_code == 200 and "Check your mailbox" in answer.text
    assert pending(store) == [NIA]
    assert confirm_link(site, sink, NIA).startswith("https://lists.example.org/confirm/")
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        from listserv.subscriptions import is_member

        assert not is_member(s, ml.id, NIA)


def test_the_answer_does_not_tell_whether_the_address_is_a_member(site: Site,
                                                                  store: Store) -> None:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        add_member(s, ml, "old@example.org", verified=True)
    member = site.post("/lists/demo/subscribe", data={"email": "old@example.org"})
    stranger = site.post("/lists/demo/subscribe", data={"email": "new@example.org"})
    assert member.status_code == stranger.status_code == 200
    assert (answer_text(member.text).replace("old@example.org", "X")
            == answer_text(stranger.text).replace("new@example.org", "X"))


def test_a_filled_honeypot_gets_the_same_answer_and_sends_nothing(site: Site, sink: SmtpSink,
                                                                  store: Store) -> None:
    robot = site.post("/lists/demo/subscribe", data={"email": NIA, "website": "http://spam"})
    assert robot.status_code == 200 and "Check your mailbox" in robot.text
    site.server.drain()
    assert pending(store) == [] and mails_to(sink, NIA) == []


def test_a_bad_address_shows_the_form_again(site: Site, store: Store) -> None:
    answer = site.post("/lists/demo/subscribe", data={"email": "not an address"})
    assert answer.status_code == 400 and 'aria-invalid="true"' in answer.text
    assert 'value="not an address"' in answer.text and pending(store) == []
    assert site.post("/lists/demo/subscribe", data={}).status_code == 400


def test_per_address_limit_holds_across_requests_and_ips(site: Site, sink: SmtpSink,
                                                         store: Store) -> None:
    """In the store: a few confirmation mails per address per day, whoever asks from where."""
    for i in range(MAX_PENDING_PER_DAY + 3):
        answer = site.post("/lists/demo/subscribe", data={"email": NIA},
                           headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert answer.status_code == 200 and "Check your mailbox" in answer.text
    site.server.drain()
    assert len(pending(store)) == MAX_PENDING_PER_DAY
    assert len(mails_to(sink, NIA)) == MAX_PENDING_PER_DAY


def test_per_ip_limit_holds_across_requests(site: Site, store: Store) -> None:
    """In memory: a client (its address as the proxy on loopback reports it) is slowed down
    whatever addresses it tries; another client is not."""
    flood = {"X-Forwarded-For": "203.0.113.9"}
    for i in range(SUBSCRIBE_PER_IP):
        answer = site.post("/lists/demo/subscribe", data={"email": f"a{i}@example.org"},
                           headers=flood)
        assert answer.status_code == 200, i
    refused = site.post("/lists/demo/subscribe", data={"email": "one-more@example.org"},
                        headers=flood)
    assert refused.status_code == 429 and "Try again in an hour" in refused.text
    assert "one-more@example.org" not in pending(store)
    other = site.post("/lists/demo/subscribe", data={"email": "someone@example.org"},
                      headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 200 and "someone@example.org" in pending(store)


def test_the_form_works_cross_site_without_a_session(site: Site, store: Store) -> None:
    """A post from another site's page: an Origin we never saw, no cookie, no token."""
    answer = site.post("/lists/demo/subscribe", data={"email": NIA},
                       headers={"Origin": "https://blog.example.net",
                                "Referer": "https://blog.example.net/post"})
    assert answer.status_code == 200 and pending(store) == [NIA]
    assert "set-cookie" not in answer.headers


def test_the_snippet_is_a_plain_form_posting_to_the_list() -> None:
    html = subscribe_snippet("https://lists.example.org/", "demo")
    assert '<form method="post" action="https://lists.example.org/lists/demo/subscribe"' in html
    assert 'name="email"' in html and 'name="website"' in html
    assert "<script" not in html and "Join demo" in html
    hostile = subscribe_snippet('https://x.org/"><script>', "demo")
    assert "<script>" not in hostile
