"""Search pages through the running server (``listserv.web.search``), on each backend: a phrase
is found with its words marked and a link to its thread; hostile query strings get pages, never
errors or markup; held posts are never found until approved; a real browser searches from the
header's box."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import select

from listserv import moderation
from listserv.lists import find
from listserv.models import Action, Held
from listserv.subscriptions import add_member
from tests.harness import mail
from tests.web_harness import Site, wait_for_text

DEMO = "demo@lists.example.org"


def _member(site: Site, *emails: str) -> None:
    with site.server.store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        for email in emails:
            add_member(s, ml, email, verified=True)


def _post(site: Site, sender: str, subject: str, body: str) -> None:
    site.server.send(sender, DEMO, mail(sender, DEMO, subject, body))


def _found(site: Site, query: str, path: str = "/search") -> str:
    page = site.get(path, params={"q": query})
    assert page.status_code == 200, page.text
    return page.text


def test_search_finds_a_phrase_with_its_words_marked(site: Site) -> None:
    _member(site, "ann@example.org")
    _post(site, "Ann Archer <ann@example.org>", "Moodle hosting costs",
          "We moved our learning platform to a hosted Moodle last spring.\n"
          "<b>Bold</b> claims & <script>alert(1)</script> stay text.\n")
    _post(site, "ann@example.org", "Unrelated", "Platform learning, words the other way.\n")
    for path in ("/search", "/lists/demo/search"):
        page = _found(site, '"learning platform"', path)
        assert page.count("<li>") == 1, page
        assert re.search(r"<mark>learning</mark>\s*<mark>platform</mark>|"
                         r"<mark>learning platform</mark>", page), page
        assert re.search(r'<a href="/lists/demo/threads/\d+\?post=\d+#m\d+">Moodle hosting costs</a>', page)
        assert "Ann Archer" in page and "ann@example.org" not in page
    # Tags in a plain-text post are text: escaped (SQLite's snippet keeps them; PostgreSQL's
    # ts_headline drops what its parser reads as tags). Never markup.
    escaped = _found(site, "claims")
    assert "<script>" not in escaped and "<b>" not in escaped and "Bold" in escaped
    if site.server.store.is_sqlite:
        assert "&lt;b&gt;Bold&lt;/b&gt; <mark>claims</mark> &amp; &lt;script&gt;" in escaped


HOSTILE = [
    {"q": 'foo" OR'}, {"q": '"'}, {"q": "NEAR(a b"}, {"q": "subject:x"}, {"q": "*"},
    {"q": "\x00"}, {"q": "<script>alert(1)</script>"}, {"q": "' OR 1=1 --"}, {"q": "x" * 5000},
    {"q": "-only"}, {"q": "moodle", "page": "abc"}, {"q": "moodle", "page": "-3"},
    {"q": "moodle", "page": "99999999999999"}, {"q": "moodle & | ! <->"}, {"q": "😀 \u202e"},
    {"q": ["a", "b"]}, {"page": "2"},
]


def test_hostile_query_strings_get_pages(site: Site) -> None:
    _member(site, "ann@example.org")
    _post(site, "ann@example.org", "Moodle", "Moodle moodle.\n")
    for params in HOSTILE:
        for path in ("/search", "/lists/demo/search"):
            page = site.get(path, params=params)
            assert page.status_code == 200, (params, page.status_code, page.text[:300])
            assert "<script>alert" not in page.text, params
    for name in ("nosuch", "<script>", "demo%00"):
        assert site.get("/search", params={"q": "x", "list": name}).status_code == 404
    assert site.get("/lists/nosuch/search", params={"q": "x"}).status_code == 404
    assert "Type at least one word" in _found(site, "-only")


def test_held_posts_are_never_found_until_approved(site: Site) -> None:
    _post(site, "stranger@example.com", "Quarantined walrus", "A walrus appears.\n")
    with site.server.store.read_session() as s:  # SMTP's 250 follows the commit
        held_id = s.exec(select(Held.id)).one()
    page = _found(site, "walrus")
    assert "No posts match" in page and "Quarantined" not in page and "<mark>" not in page
    with site.server.store.session() as s:
        assert moderation.act(s, site.server.cfg, held_id, Action.ACCEPT, actor="test").ok
    assert "<mark>walrus</mark>" in _found(site, "walrus")


def test_results_are_paged(site: Site) -> None:
    _member(site, "ann@example.org")
    with site.server.store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        ml.max_posts_per_hour = 0  # one sender, many posts
        s.add(ml)
    for i in range(23):
        _post(site, "ann@example.org", f"Report {i}", "Quarterly accessibility report.\n")
    first = _found(site, "accessibility")
    assert first.count("<li>") == 20 and 'rel="next"' in first and 'rel="prev"' not in first
    second = site.get("/search", params={"q": "accessibility", "page": "2"}).text
    assert second.count("<li>") == 3 and 'rel="prev"' in second and 'rel="next"' not in second
    assert 'start="21"' in second


def test_every_page_has_the_search_box(site: Site) -> None:
    home = site.get("/").text
    assert '<form class="search-box" role="search" action="/search" method="get">' in home
    assert '<label for="site-q"' in home


def test_a_browser_searches_from_the_header(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _member(site, "ann@example.org")
    _post(site, "ann@example.org", "Social media café in Ripley",
          "A free breakfast meeting on 3 September, 9.30 to 12.30.\n")
    browser.get(site.url + "/")
    box = browser.find_element(By.ID, "site-q")
    box.send_keys('"breakfast meeting"')
    box.submit()
    wait_for_text(browser, "h1", "Search")  # submit() does not wait for the results page
    marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "ol.results mark")]
    assert marks in (["breakfast", "meeting"], ["breakfast meeting"]), browser.page_source
    link = browser.find_element(By.CSS_SELECTOR, "ol.results h2 a")
    assert link.text == "Social media café in Ripley"
    assert re.search(r"/lists/demo/threads/\d+\?post=\d+#m\d+$", link.get_attribute("href") or "")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []



def _signed_in(site: Site, email: str) -> dict[str, str]:
    from listserv import signin
    from listserv.models import utcnow
    from listserv.web.signin import COOKIE

    return {"Cookie": f"{COOKIE}={signin.session_value(site.server.store.secret(), email, utcnow())}"}


def test_a_list_search_not_open_to_the_viewer_answers_like_the_archive(site: Site) -> None:
    _member(site, "ann@example.org")
    _post(site, "ann@example.org", "Moodle hosting costs", "We pay per learner.\n")
    with site.server.store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        ml.archive = "members"
        s.add(ml)
    for path, params in (("/lists/demo/search", {"q": "Moodle"}),
                         ("/search", {"q": "Moodle", "list": "demo"})):
        out = site.get(path, params=params)  # signed out: told to sign in, as on the archive
        assert out.status_code == 401 and "Please sign in" in out.text, path
        assert "Moodle hosting costs" not in out.text
        stranger = site.get(path, params=params, headers=_signed_in(site, "eve@example.org"))
        assert stranger.status_code == 403 and "Not open to you" in stranger.text, path
        assert "Moodle hosting costs" not in stranger.text
        member = site.get(path, params=params, headers=_signed_in(site, "ann@example.org"))
        assert member.status_code == 200 and "Moodle hosting costs" in member.text, path
    assert site.get("/lists/nosuch/search", params={"q": "Moodle"}).status_code == 404
    assert site.get("/search", params={"q": "x", "list": "nosuch"}).status_code == 404
