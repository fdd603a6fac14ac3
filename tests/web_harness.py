"""Fixtures for page tests: the whole server with its web pages on loopback, an HTTP client,
a real headless Chromium, and a second web site on another origin (for the embedded form).

    def test_x(site: Site, browser: WebDriver) -> None:
        page = site.get("/lists/demo/subscribe")            # httpx against the running server
        browser.get(site.local(link_from_mail))             # mail carries web_base_url links

Invariants:
- ``site`` is ``tests.harness.running`` (SMTP, delivery to ``sink``, scheduler, web) with a
  list "demo" (moderator mod@example.org): the same App ``commonroom serve`` runs, on free ports.
- Mail carries ``web_base_url`` (https://lists.example.org in the tests' config); ``local``
  maps such a link to the running server, so tests follow the very link that was mailed.
- ``browser`` is Debian's /usr/bin/chromium driven by /usr/bin/chromedriver (Selenium 4), one
  per test session, cookies cleared for each test; where they are missing, tests that use it
  skip and say what to install. COMMONROOM_CHROMIUM / COMMONROOM_CHROMEDRIVER point elsewhere.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from listserv import config as config_mod
from listserv.store import Store
from tests.harness import Running, make_list, running, write_config
from tests.smtpsink import SmtpSink

MAILED_BASE = "https://lists.example.org"  # web_base_url in tests.harness.write_config


@dataclass
class Site:
    """A running server and an HTTP client for its pages (no redirects followed)."""

    server: Running
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.web_url

    def local(self, mailed: str) -> str:
        """A link as mail carries it (``web_base_url``…) made to point at this server."""
        assert mailed.startswith(MAILED_BASE), mailed
        return self.url + mailed.removeprefix(MAILED_BASE)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)


@pytest.fixture
def site(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Site]:
    make_list(store, "demo", moderators=("mod@example.org",), description="Demo list")
    cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
    with running(cfg, store) as srv, httpx.Client(base_url=srv.web_url, timeout=30) as client:
        yield Site(srv, client)


# --- a real browser ----------------------------------------------------------------------

def browser_paths() -> tuple[str, str] | str:
    """(chromium, chromedriver), or why they cannot be used."""
    chromium = os.environ.get("COMMONROOM_CHROMIUM") or shutil.which("chromium") or ""
    driver = os.environ.get("COMMONROOM_CHROMEDRIVER") or shutil.which("chromedriver") or ""
    if not chromium or not driver:
        return ("no Chromium found for browser tests: install Debian's 'chromium' and "
                "'chromium-driver' packages (apt-get install chromium chromium-driver), or set "
                "COMMONROOM_CHROMIUM and COMMONROOM_CHROMEDRIVER")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: make install (it is a test dependency)"
    return chromium, driver


@pytest.fixture(scope="session")
def browser_session() -> Iterator[Any]:
    found = browser_paths()
    if isinstance(found, str):
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1000,1400", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with it
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(browser: Any, css: str) -> str:
    """The text of the first element matching ``css`` on the page now shown ("" when there is
    none, or while a page is being replaced): safe to poll after a click that navigates,
    where a found element can go stale before it is read."""
    from selenium.common.exceptions import WebDriverException

    try:
        found = browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)
    except WebDriverException:
        return ""
    return str(found or "")


def wait_for_text(browser: Any, css: str, wanted: str, timeout: float = 15.0) -> str:
    """Wait until the element ``css`` contains ``wanted``; returns its text."""
    from tests.harness import wait_until

    return str(wait_until(lambda: wanted in text_of(browser, css) and text_of(browser, css),
                          timeout, what=f"{wanted!r} in {css}"))


@pytest.fixture
def browser(browser_session: Any) -> Any:
    """The session's headless Chromium (a selenium WebDriver), with no cookies and an empty
    console log (an earlier test's expected 401 must not count as this test's error)."""
    browser_session.delete_all_cookies()
    browser_session.get_log("browser")  # reading the log empties it
    return browser_session


# --- another origin ----------------------------------------------------------------------

@dataclass
class OtherSite:
    """A tiny web site on another port (another origin): it serves ``pages`` by path."""

    pages: dict[str, str] = field(default_factory=dict)
    url: str = ""


@pytest.fixture
def other_site() -> Iterator[OtherSite]:
    served = OtherSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://localhost:{httpd.server_address[1]}"  # another host name, too
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- reading what the site mailed --------------------------------------------------------

def mails_to(sink: SmtpSink, rcpt: str) -> list[Any]:
    """Parsed messages the sink received for ``rcpt`` alone, in order."""
    from tests.harness import parse

    return [parse(m.data) for m in sink.messages if m.rcpt_tos == (rcpt,)]


def body_text(message: Any) -> str:
    """The first text/plain part, decoded."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"))
    raise AssertionError("no text/plain part")


def confirm_link(site: Site, sink: SmtpSink, rcpt: str) -> str:
    """The /confirm/ link of the latest confirmation mailed to ``rcpt``, as mailed."""
    import re

    site.server.drain()
    confirms = [m for m in mails_to(sink, rcpt) if str(m["Subject"]).startswith("confirm ")]
    assert confirms, f"no confirmation was mailed to {rcpt}"
    found = re.search(r"https://lists\.example\.org/confirm/[0-9a-f]+", body_text(confirms[-1]))
    assert found, body_text(confirms[-1])
    return found.group(0)
