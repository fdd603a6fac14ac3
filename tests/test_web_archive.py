"""The archive pages through the running server (SMTP in, HTTP out), on each backend: the
lists, a list's threads (paged), a thread's tree, a message, attachments, the feed, who may
read, and what never appears."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from listserv import links
from listserv.lists import find
from listserv.models import Message, MessageStatus, Thread
from listserv.store import Store
from listserv.subscriptions import add_member
from tests.archive_posts import add_vendor, post
from tests.harness import cli, mail, make_list, wait_until
from tests.inert import problems
from tests.smtpsink import SmtpSink
from tests.web_harness import Site, body_text, mails_to, wait_for_text

TO = "demo@lists.example.org"
HOSTILE = Path(__file__).parent / "data" / "hostile"


def _members(store: Store, *emails: str, **settings: object) -> None:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        for key, value in settings.items():
            setattr(ml, key, value)
        s.add(ml)
        for email in emails:
            add_member(s, ml, email, verified=True)


def _pk(store: Store, message_id: str) -> int:
    def found() -> int | None:
        with store.read_session() as s:
            m = s.exec(select(Message).where(Message.message_id == message_id)).first()
            return m.id if m is not None else None
    pk = wait_until(found, what=message_id)
    assert isinstance(pk, int)
    return pk


def _thread_of(store: Store, pk: int) -> int:
    with store.read_session() as s:
        m = s.get(Message, pk)
        assert m is not None and m.thread_id is not None
        return m.thread_id


def _conversation(site: Site) -> dict[str, int]:
    store = site.server.store
    _members(store, "ann@example.org", "bob@example.org", max_posts_per_hour=0)
    add_vendor(store, "vera@acme.example", "Acme Ltd", name="Vera Vendor")
    send = site.server.send
    send("ann@example.org", TO, mail('"Ann Example" <ann@example.org>', TO, "Which LMS?",
                                     "We use Moodle. See https://moodle.org/ for more.\n",
                                     message_id="open@example.org"))
    send("bob@example.org", TO, mail('"Bob Example" <bob@example.org>', TO, "Re: Which LMS?",
                                     "Totara here.\n\nOn Mon, 23 Nov 2026, Ann Example wrote:\n"
                                     "> We use Moodle.\n> See the site.\n",
                                     message_id="reply@example.org",
                                     headers={"In-Reply-To": "<open@example.org>",
                                              "References": "<open@example.org>"}))
    send("vera@acme.example", TO, mail("vera@acme.example", TO, "Re: Which LMS?",
                                       "Our product page: https://acme.example/lms\n",
                                       message_id="vendor@example.org",
                                       headers={"In-Reply-To": "<reply@example.org>",
                                                "References": "<open@example.org> "
                                                              "<reply@example.org>"}))
    send("stranger@elsewhere.example", TO, mail("stranger@elsewhere.example", TO,
                                                "Re: Which LMS?", "SECRET HELD WORDS\n",
                                                message_id="held@example.org",
                                                headers={"In-Reply-To": "<open@example.org>"}))
    send("ann@example.org", TO, mail("ann@example.org", TO, "Out of office",
                                     "DISCARDED AUTO WORDS\n", message_id="auto@example.org",
                                     headers={"Auto-Submitted": "auto-replied"}))
    return {name: _pk(store, f"{name}@example.org")
            for name in ("open", "reply", "vendor", "held", "auto")}


class _Nesting(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[int | None] = []  # the open <li>s: a post's pk, or None for others
        self.parents: dict[int, int | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "li":
            return
        m = re.fullmatch(r"m(\d+)", dict(attrs).get("id") or "")
        pk = int(m.group(1)) if m else None
        if pk is not None:
            self.parents[pk] = next((p for p in reversed(self.stack) if p is not None), None)
        self.stack.append(pk)

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self.stack.pop()


def _tree(html: str) -> dict[int, int | None]:
    """Each post's parent (by pk) as the page nests them: <li id="mPK"> inside <li id="mPK">."""
    parser = _Nesting()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], "unbalanced <li>s"
    return parser.parents


def test_thread_page_shows_the_tree_vendor_staff_and_folded_quotes(site: Site) -> None:
    pks = _conversation(site)
    tid = _thread_of(site.server.store, pks["open"])
    page = site.get(f"/lists/demo/threads/{tid}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Which LMS?</h1>" in html
    assert _tree(html) == {pks["open"]: None, pks["reply"]: pks["open"],
                           pks["vendor"]: pks["reply"]}
    assert 'Vera Vendor <span class="badge">Acme Ltd, vendor</span>' in html
    assert ('<details class="quote"><summary>Quoted text (3 lines)</summary><div class="mail-text">'
            'On Mon, 23 Nov 2026, Ann Example wrote:') in html
    assert ('<a href="https://moodle.org/" rel="noopener noreferrer nofollow">'
            'https://moodle.org/</a>') in html
    assert "SECRET HELD WORDS" not in html and "DISCARDED" not in html
    assert 'rel="alternate" type="application/atom+xml"' in html
    assert '<html lang="en">' in html and '<main id="main"' in html
    assert problems(html) == []
    assert "ann@example.org" not in html  # names, not harvestable addresses


def test_list_page_shows_threads_with_replies_and_participants(site: Site) -> None:
    pks = _conversation(site)
    page = site.get("/lists/demo/")
    assert page.status_code == 200
    html = page.text
    tid = _thread_of(site.server.store, pks["open"])
    assert f'<a class="subject" href="/lists/demo/threads/{tid}">Which LMS?</a>' in html
    assert "2 replies" in html and "Ann Example, Bob Example, Vera Vendor" in html
    assert "Out of office" not in html  # discarded: no thread at all
    assert '<link rel="alternate" type="application/atom+xml"' in html
    # The embeddable form, shown as text to copy; the copy button is the page's only script.
    assert "&lt;form method=&#34;post&#34; action=&#34;https://lists.example.org/lists/demo/" \
           "subscribe&#34;" in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/copy.js" defer>']
    assert site.get("/static/copy.js").status_code == 200
    assert problems(html) == []


def test_threads_are_paged_with_a_cursor(site: Site) -> None:
    store = site.server.store
    _members(store, "ann@example.org", max_posts_per_hour=0)
    for i in range(30):
        raw = mail("ann@example.org", TO, f"Topic {i:02d}", "Text.", message_id=f"t{i}@x")
        raw = raw.replace(b"Wed, 25 Nov 2026 10:00", f"Wed, 25 Nov 2026 10:{i:02d}".encode())
        post(store, raw)
    first = site.get("/lists/demo/").text
    subjects = re.findall(r'class="subject" href="[^"]+">(Topic \d+)</a>', first)
    assert subjects == [f"Topic {i:02d}" for i in range(29, 4, -1)]
    older = re.search(r'<a rel="next" href="(/lists/demo/\?before=[^"]+)">Older threads', first)
    assert older is not None
    second = site.get(older.group(1)).text
    assert re.findall(r'class="subject" href="[^"]+">(Topic \d+)</a>', second) == [
        f"Topic {i:02d}" for i in range(4, -1, -1)]
    assert 'rel="next"' not in second
    assert site.get("/lists/demo/?before=garbage").status_code == 200  # first page again


def test_lists_page_shows_public_lists_with_activity(site: Site) -> None:
    make_list(site.server.store, "secret", archive="private", description="Hidden")
    _conversation(site)
    html = site.get("/lists/").text
    assert '<a href="/lists/demo/">demo</a>' in html and "/lists/secret/" not in html
    text = " ".join(html.split())
    assert "4 members · 3 posts this month" in text  # the moderator, Ann, Bob, Vera; 3 accepted
    chart = re.search(r'<svg class="chart" role="img" aria-label="([^"]+)"', html)
    assert chart is not None and chart.group(1).endswith(", 3")
    assert problems(html) == []


def test_message_page_has_headers_and_never_shows_unaccepted_posts(site: Site) -> None:
    pks = _conversation(site)
    page = site.get(f"/lists/demo/messages/{pks['vendor']}")
    assert page.status_code == 200
    assert "<code>&lt;vendor@example.org&gt;</code>" in page.text
    assert f'<a href="/lists/demo/messages/{pks["reply"]}">Re: Which LMS?</a>' in page.text
    assert links.message_url("https://x", "demo", 5) == "https://x/lists/demo/messages/5"
    for hidden in ("held", "auto"):
        assert site.get(f"/lists/demo/messages/{pks[hidden]}").status_code == 404
        assert site.get(f"/lists/demo/messages/{pks[hidden]}/attachments/1").status_code == 404
    with site.server.store.read_session() as s:
        statuses = {m.id: m.status for m in s.exec(select(Message))}
        held_threads = s.exec(select(Thread).where(Thread.post_count == 0)).all()
    assert statuses[pks["held"]] == MessageStatus.HELD.value
    assert statuses[pks["auto"]] == MessageStatus.DISCARDED.value
    assert not held_threads
    for path in ("/lists/demo/messages/999999", "/lists/demo/messages/abc",
                 "/lists/demo/threads/0", "/lists/demo/threads/x", "/lists/nosuch/",
                 "/lists/BAD..NAME/"):
        assert site.get(path).status_code == 404, path


def _post_hostile(site: Site) -> dict[str, int]:
    _members(site.server.store, "mallory@example.org", max_posts_per_hour=0)
    out = {}
    for path in sorted(HOSTILE.glob("*.eml")):
        site.server.send("mallory@example.org", TO, path.read_bytes().replace(b"\r\n", b"\n"))
        mid = re.search(rb"Message-ID: <([^>]+)>", path.read_bytes())
        assert mid is not None
        out[path.name] = _pk(site.server.store, mid.group(1).decode())
    return out


def test_hostile_mail_renders_inert(site: Site) -> None:
    pks = _post_hostile(site)
    for name, pk in pks.items():
        for path in (f"/lists/demo/messages/{pk}",
                     f"/lists/demo/threads/{_thread_of(site.server.store, pk)}"):
            page = site.get(path)
            assert page.status_code == 200, (name, path)
            assert problems(page.text) == [], (name, path)
            assert "'unsafe-inline'" not in page.headers["content-security-policy"]
            assert re.findall(r"<script[^>]*>", page.text, re.IGNORECASE) == [], (name, path)
    listing = site.get("/lists/demo/").text
    assert problems(listing) == []
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in listing


def test_attachments_download_safely(site: Site) -> None:
    pk = _post_hostile(site)["06-attachments.eml"]
    page = site.get(f"/lists/demo/messages/{pk}").text
    hrefs = re.findall(rf'href="(/lists/demo/messages/{pk}/attachments/\d+)" download>([^<]+)<',
                       page)
    assert [h for h, _ in hrefs] == [links.attachment_url("", "demo", pk, n) for n in range(1, 7)]
    want_types = ["application/octet-stream", "application/octet-stream", "text/plain",
                  "application/octet-stream", "application/octet-stream", "application/pdf"]
    for (href, _name), want in zip(hrefs, want_types, strict=True):
        r = site.get(href)
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == want
        assert r.headers["x-content-type-options"] == "nosniff"
        disposition = r.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="') and "filename*=UTF-8''" in disposition
        assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
        assert "sandbox" in r.headers["content-security-policy"]
    html_att = site.get(hrefs[0][0])
    assert html_att.content == b'<script>alert("attachment html")</script>'
    assert site.get(f"/lists/demo/messages/{pk}/attachments/7").status_code == 404
    assert site.get(f"/lists/demo/messages/{pk}/attachments/0").status_code == 404


def test_feed_lists_new_threads(site: Site) -> None:
    pks = _conversation(site)
    r = site.get("/lists/demo/feed.atom")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(r.content)
    entries = root.findall("a:entry", ns)
    assert [e.findtext("a:title", namespaces=ns) for e in entries] == ["Which LMS?"]
    tid = _thread_of(site.server.store, pks["open"])
    link = entries[0].find("a:link", ns)
    assert link is not None and link.get("href") == links.thread_url(
        "https://lists.example.org", "demo", tid)
    assert entries[0].findtext("a:author/a:name", namespaces=ns) == "Ann Example"
    assert "We use Moodle." in (entries[0].findtext("a:summary", namespaces=ns) or "")


@pytest.mark.parametrize("setting", ["members", "private"])
def test_archives_not_public_ask_for_sign_in(site: Site, setting: str) -> None:
    pks = _conversation(site)
    _members(site.server.store, archive=setting)
    tid = _thread_of(site.server.store, pks["open"])
    for path in ("/lists/demo/", f"/lists/demo/threads/{tid}", f"/lists/demo/messages/{pks['open']}",
                 f"/lists/demo/messages/{pks['open']}/attachments/1", "/lists/demo/feed.atom"):
        r = site.get(path)
        assert r.status_code == 401, path
        assert "Please sign in" in r.text and "We use Moodle" not in r.text
    assert "/lists/demo/" not in site.get("/lists/").text


def test_lists_set_archive(config_path: Path, store: Store) -> None:
    make_list(store)
    assert cli(config_path, "lists", "set", "demo", "archive", "members").exit_code == 0
    with store.read_session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.archive == "members"
    bad = cli(config_path, "lists", "set", "demo", "archive", "secret")
    assert bad.exit_code != 0 and "archive must be one of public, members, private" in bad.output


def test_browser_shows_a_thread_with_quotes_folded(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    pks = _conversation(site)
    tid = _thread_of(site.server.store, pks["open"])
    browser.get(f"{site.url}/lists/demo/threads/{tid}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Which LMS?"
    # The tree: the vendor's answer sits inside Bob's post, which sits inside Ann's.
    vendor = browser.find_element(By.CSS_SELECTOR, f"#m{pks['open']} #m{pks['reply']} "
                                                   f"#m{pks['vendor']}")
    assert "Acme Ltd, vendor" in vendor.find_element(By.CSS_SELECTOR, ".badge").text
    details = browser.find_element(By.CSS_SELECTOR, f"#m{pks['reply']} > article details.quote")
    quoted = details.find_element(By.CSS_SELECTOR, ".mail-text")
    summary = details.find_element(By.TAG_NAME, "summary")
    assert summary.text == "Quoted text (3 lines)"
    assert not quoted.is_displayed()  # folded
    summary.click()
    assert quoted.is_displayed() and "We use Moodle." in quoted.text
    # The list page's one script ran under the CSP: the copy button shows itself.
    browser.get(f"{site.url}/lists/demo/")
    assert browser.find_element(By.CSS_SELECTOR, "button.copy").is_displayed()


def _as(site: Site, email: str) -> dict[str, str]:
    """Request headers of someone signed in as ``email`` (the session cookie sign-in sets)."""
    from listserv import signin
    from listserv.models import utcnow
    from listserv.web.signin import COOKIE

    value = signin.session_value(site.server.store.secret(), email, utcnow())
    return {"Cookie": f"{COOKIE}={value}"}


@pytest.mark.parametrize("setting,readers,refused", [
    ("members", ("ann@example.org", "mod@example.org"), ("stranger@example.org",)),
    ("private", ("mod@example.org",), ("ann@example.org", "stranger@example.org")),
])
def test_signed_in_readers_of_archives_not_public(site: Site, setting: str,
                                                  readers: tuple[str, ...],
                                                  refused: tuple[str, ...]) -> None:
    pks = _conversation(site)
    _members(site.server.store, archive=setting)
    tid = _thread_of(site.server.store, pks["open"])
    paths = ("/lists/demo/", f"/lists/demo/threads/{tid}", f"/lists/demo/messages/{pks['open']}",
             "/lists/demo/feed.atom")
    for email in readers:
        for path in paths:
            r = site.get(path, headers=_as(site, email))
            assert r.status_code == 200, (email, path)
        assert "We use Moodle" in site.get(f"/lists/demo/threads/{tid}",
                                           headers=_as(site, email)).text
    for email in refused:
        for path in paths:
            r = site.get(path, headers=_as(site, email))
            assert r.status_code == 403 and "We use Moodle" not in r.text, (email, path)


@pytest.mark.parametrize("setting", ["members", "private"])
def test_search_finds_posts_only_where_the_viewer_may_read(site: Site, setting: str) -> None:
    pks = _conversation(site)
    tid = _thread_of(site.server.store, pks["open"])
    hit = f'href="/lists/demo/threads/{tid}?post={pks["open"]}#m{pks["open"]}"'
    assert hit in site.get("/search", params={"q": "Moodle"}).text  # public: anyone
    _members(site.server.store, archive=setting)
    for path in ("/search", "/lists/demo/search"):
        assert hit not in site.get(path, params={"q": "Moodle"}).text
        assert hit in site.get(path, params={"q": "Moodle"}, headers=_as(site, "mod@example.org")).text
    assert hit not in site.get("/search", params={"q": "Moodle"},
                               headers=_as(site, "stranger@example.org")).text


def test_browser_members_only_archive_refuses_a_stranger_and_admits_a_signed_in_member(
        site: Site, sink: SmtpSink, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    pks = _conversation(site)
    _members(site.server.store, archive="members")
    thread = f"{site.url}/lists/demo/threads/{_thread_of(site.server.store, pks['open'])}"
    browser.get(thread)
    wait_for_text(browser, "main", "Please sign in")
    assert "We use Moodle" not in browser.find_element(By.TAG_NAME, "body").text
    browser.get(site.url + "/signin")
    browser.find_element(By.NAME, "email").send_keys("ann@example.org")
    browser.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait_for_text(browser, "main", "Check your mailbox")
    site.server.drain()
    [mailed] = [m for m in mails_to(sink, "ann@example.org")
                if str(m["Subject"]).startswith("Sign in")]
    link = re.search(r"https://lists\.example\.org/signin/\S+", body_text(mailed))
    assert link
    browser.get(site.local(link.group(0)))
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for_text(browser, "main", "Signed in as")
    browser.get(thread)
    wait_for_text(browser, "main", "We use Moodle")


# --- long threads are paged (issue 9 follow-up) ---

LONG = 120


def _long_thread(site: Site) -> tuple[list[int], dict[int, int | None]]:
    """A 120-post thread, posts in reply order, and each post's parent: every third post
    answers the opening post, the others the post before them, so subtrees cross pages."""
    store = site.server.store
    _members(store, "ann@example.org", max_posts_per_hour=0)
    parents: dict[int, int | None] = {}
    for i in range(LONG):
        headers = {}
        if i:
            to = 0 if i % 3 == 0 else i - 1
            headers = {"In-Reply-To": f"<p{to}@x>"}
        post(store, mail("ann@example.org", TO, "Long one", f"Word{i}x here.\n",
                         message_id=f"p{i}@x", headers=headers))
        parents[i] = None if not i else (0 if i % 3 == 0 else i - 1)
    pks = [_pk(store, f"p{i}@x") for i in range(LONG)]
    by_index = {pk: i for i, pk in enumerate(pks)}

    # Reply order: depth first, answers in date (here: storage) order.
    children: dict[int | None, list[int]] = {}
    for i in range(LONG):
        children.setdefault(parents[i], []).append(i)
    order: list[int] = []
    stack = [0]
    while stack:
        i = stack.pop()
        order.append(pks[i])
        stack.extend(reversed(children.get(i, [])))
    return order, {pk: pks[p] if (p := parents[by_index[pk]]) is not None else None
                   for pk in pks}


def _shown(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li id="m(\d+)">', html)]


def test_a_long_thread_is_paged_in_reply_order_with_its_tree(site: Site) -> None:
    order, parent = _long_thread(site)
    tid = _thread_of(site.server.store, order[0])
    base = f"/lists/demo/threads/{tid}"
    pages = [site.get(base), site.get(f"{base}?page=2"), site.get(f"{base}?page=3")]
    assert [p.status_code for p in pages] == [200, 200, 200]
    shown = [_shown(p.text) for p in pages]
    assert [len(s) for s in shown] == [50, 50, 20]
    assert shown[0] + shown[1] + shown[2] == order  # page after page reads the whole thread
    assert site.get(base, params={"page": "1"}).text.count('<li id="m') == 50
    for number, page in enumerate(pages, start=1):
        html = page.text
        tree = _tree(html)  # balanced, whatever depth the page opens at
        on_page = set(shown[number - 1])
        for pk, up in tree.items():
            # Nested in its parent when the parent is on the page, else at the page's top
            # level with a link to the parent's page.
            assert up == (parent[pk] if parent[pk] in on_page else None), pk
            if parent[pk] is not None and parent[pk] not in on_page:
                where = next(n for n, s in enumerate(shown, start=1) if parent[pk] in s)
                link = f"{base}?page={where}#m{parent[pk]}" if where > 1 else \
                    f"{base}#m{parent[pk]}"
                assert f'in reply to <a href="{link}">' in html, pk
        assert ('<a rel="prev"' in html) == (number > 1)
        assert ('<a rel="next"' in html) == (number < 3)
        assert f"page {number} of 3" in html
        assert problems(html) == []
    assert f'<a rel="next" href="{base}?page=2">' in pages[0].text
    assert f'<a rel="prev" href="{base}">' in pages[1].text
    assert f'<link rel="next" href="{base}?page=3">' in pages[1].text
    for bad in ("0", "4", "x", "-1", "9" * 30):
        assert site.get(base, params={"page": bad}).status_code == 404, bad
    assert "<nav class=\"pages\"" not in site.get(  # a short thread has no pager
        f"/lists/demo/threads/{_thread_of(site.server.store, _conversation(site)['open'])}").text


def test_message_and_search_links_land_on_the_page_of_the_post(site: Site) -> None:
    order, _ = _long_thread(site)
    tid = _thread_of(site.server.store, order[0])
    for pk in (order[0], order[49], order[50], order[110]):
        message = site.get(f"/lists/demo/messages/{pk}").text
        link = re.search(rf'<a href="(/lists/demo/threads/{tid}[^"#]*)#m{pk}">thread</a>',
                         message)
        assert link is not None, pk
        page = site.get(link.group(1).replace("&amp;", "&"))
        assert page.status_code == 200 and pk in _shown(page.text), pk
        number = order.index(pk) // 50 + 1
        canonical = f"/lists/demo/threads/{tid}" + (f"?page={number}" if number > 1 else "")
        assert f'<link rel="canonical" href="{canonical}">' in page.text
    with site.server.store.read_session() as s:
        m = s.get(Message, order[110])
        assert m is not None
        word = re.search(rb"Word\d+x", m.raw)
        assert word is not None
    found = site.get("/search", params={"q": word.group(0).decode()}).text
    hit = re.search(rf'href="(/lists/demo/threads/{tid}[^"#]*)#m{order[110]}"', found)
    assert hit is not None
    assert order[110] in _shown(site.get(hit.group(1).replace("&amp;", "&")).text)


def test_browser_reads_a_long_thread_across_pages(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    order, parent = _long_thread(site)
    pk = order[110]
    browser.get(f"{site.url}/lists/demo/messages/{pk}")
    browser.find_element(By.LINK_TEXT, "thread").click()
    post_el = browser.find_element(By.ID, f"m{pk}")
    assert post_el.is_displayed() and "page 3 of 3" in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.CSS_SELECTOR, "nav.pages a[rel=prev]").click()
    wait_for_text(browser, "main", "page 2 of 3")
    # The tree still nests on page 2: some post sits inside its parent's item.
    child = next(c for c in order[50:100] if parent[c] in order[50:100])
    nested = browser.find_element(By.CSS_SELECTOR, f"#m{parent[child]} #m{child}")
    assert nested.is_displayed()
