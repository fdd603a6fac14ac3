"""Page tests in a real headless Chromium: a reader joins from the form embedded on another
site, confirms in the browser, and the welcome mail reaches the smarthost; a member changes
their delivery on their own page."""

from __future__ import annotations

from typing import Any

from listserv import links
from listserv.lists import find
from listserv.store import Store
from listserv.subscriptions import add_member, find_subscription
from listserv.web.subscribe import subscribe_snippet
from tests.harness import wait_until
from tests.smtpsink import SmtpSink
from tests.web_harness import OtherSite, Site, confirm_link, mails_to, text_of, wait_for_text

NIA = "nia@council.gov.uk"


def test_join_from_a_form_embedded_on_another_site(site: Site, sink: SmtpSink, browser: Any,
                                                   other_site: OtherSite) -> None:
    from selenium.webdriver.common.by import By

    other_site.pages["/blog"] = ("<!doctype html><title>A council blog</title><h1>Our blog</h1>"
                                 + subscribe_snippet(site.url, "demo"))
    browser.get(other_site.url + "/blog")
    assert other_site.url.split(":")[1] != site.url.split(":")[1]  # another origin
    browser.find_element(By.NAME, "email").send_keys(NIA)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for_text(browser, "h1", "Check your mailbox")
    assert browser.current_url.startswith(site.url)  # our answer page

    browser.get(site.local(confirm_link(site, sink, NIA)))
    assert "Confirm: join demo" in text_of(browser, "h1")
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for_text(browser, "h1", "Done")
    assert f"{NIA} is now a member of demo" in text_of(browser, "main")

    site.server.drain()
    welcome = wait_until(lambda: [m for m in mails_to(sink, NIA)
                                  if m["Subject"] == "Welcome to demo"], what="the welcome")
    assert len(welcome) == 1
    ours = [e for e in browser.get_log("browser") if site.url in e["message"]]
    assert [e for e in ours if e["level"] == "SEVERE"] == []  # e.g. nothing our CSP blocked


def test_a_member_changes_delivery_in_the_browser(site: Site, store: Store, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        add_member(s, ml, NIA, verified=True)
    url = links.delivery_url(site.url, store.secret(), "demo", NIA)
    browser.get(url)
    browser.find_element(By.CSS_SELECTOR, "input[value=html]").click()
    browser.find_element(By.XPATH, "//button[text()='Save']").click()
    wait_for_text(browser, "main", "will get")
    assert browser.find_element(By.CSS_SELECTOR, "input[value=html]").is_selected()
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, NIA)
        assert sub is not None and sub.delivery_mode == "html"
