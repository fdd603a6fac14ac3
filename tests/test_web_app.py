"""The web foundation, through the running server: pages, error pages, security headers,
/healthz, start-up and stopping, and a real browser loading a page under our CSP."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from listserv import config as config_mod
from listserv.serve import App, StartupError
from listserv.store import Store
from listserv.web.pages import env
from listserv.web.security import HEADERS
from tests.harness import write_config
from tests.smtpsink import SmtpSink
from tests.web_harness import Site


def test_home_page_is_plain_html_with_a_skip_link(site: Site) -> None:
    page = site.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<a class="skip" href="#main">' in page.text and '<main id="main"' in page.text
    assert "lists.example.org" in page.text and "<script" not in page.text


@pytest.mark.parametrize("path", ["/", "/nowhere", "/static/site.css", "/healthz"])
def test_every_response_carries_the_security_headers(site: Site, path: str) -> None:
    response = site.get(path)
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]


def test_unknown_page_is_a_kind_404(site: Site) -> None:
    page = site.get("/lists/demo/<script>x</script>")
    assert page.status_code == 404 and "There is no page at this address" in page.text
    assert "<script>x" not in page.text


def test_templates_escape_what_they_are_given() -> None:
    html = env.from_string("{{ x }}").render(x='<img src=x onerror="alert(1)">')
    assert html == "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"


def test_healthz_names_each_part(site: Site) -> None:
    health = site.get("/healthz")
    assert health.status_code == 200
    assert health.text.splitlines() == ["store: ok", "smtp: ok", "scheduler: ok"]
    assert health.headers["cache-control"] == "no-store"


def test_healthz_is_503_naming_the_smtp_server_when_it_stops_listening(site: Site) -> None:
    smtp = site.server.app.server
    assert smtp is not None

    async def close() -> None:
        smtp.close()
        await smtp.wait_closed()

    site.server.call(close())
    health = site.get("/healthz")
    assert health.status_code == 503
    assert "smtp: the SMTP server is not listening" in health.text
    assert "store: ok" in health.text


def test_healthz_is_503_naming_the_scheduler_when_it_has_stopped(site: Site) -> None:
    scheduler = site.server.app.scheduler
    assert scheduler is not None
    site.server.call(scheduler.stop())
    health = site.get("/healthz")
    assert health.status_code == 503 and "scheduler: the scheduler is not running" in health.text


def test_a_web_port_in_use_stops_start_up_saying_what_to_do(store: Store, tmp_path: Path,
                                                            db_url: str, sink: SmtpSink) -> None:
    cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(cfg, store, smtp_port=0, web_port=port, with_scheduler=False)

        async def start() -> None:
            await app.start()

        with pytest.raises(StartupError) as err:
            asyncio.run(start())
    assert f"127.0.0.1:{port}" in str(err.value) and "[server] web_port" in str(err.value)
    # Start-up undid what it had started: the SMTP port is free again.
    assert app.server is None or not app.server.is_serving()


def test_stopping_closes_the_web_port(store: Store, tmp_path: Path, db_url: str,
                                      sink: SmtpSink) -> None:
    cfg = config_mod.load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={})

    async def run() -> str:
        app = App(cfg, store, smtp_port=0, web_port=0, with_scheduler=False)
        await app.start()
        url = app.web_url
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "/healthz")).status_code == 200
        await app.stop()
        return url

    url = asyncio.run(run())
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=2)


def test_a_real_browser_shows_the_page_with_no_policy_violations(site: Site, browser: Any) -> None:
    browser.get(site.url + "/")
    assert browser.title == "Mailing lists · lists.example.org"
    # The stylesheet loaded under the Content-Security-Policy (a blocked one leaves no rules).
    rules = browser.execute_script("return document.styleSheets[0].cssRules.length")
    assert rules > 5
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
