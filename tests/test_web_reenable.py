"""/lists/LIST/reenable/TOKEN: the link in the "delivery disabled" notice, over HTTP against
the running server, after a real bounce through SMTP."""

from __future__ import annotations

import re
from pathlib import Path

from listserv.addresses import verp_sender
from listserv.lists import find
from listserv.store import Store
from listserv.subscriptions import add_member, find_subscription
from tests.harness import DOMAIN, parse
from tests.smtpsink import SmtpSink
from tests.web_harness import Site

ANN = "alice@example.org"  # the failed recipient of the sample
SAMPLE = Path(__file__).parent / "data" / "bounces" / "postfix_5.1.1.eml"


def disabled(store: Store) -> bool:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, ANN)
        assert sub is not None
        return sub.delivery_disabled_at is not None


def test_reenable_link_get_changes_nothing_post_enables(site: Site, sink: SmtpSink,
                                                        store: Store) -> None:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        ml.bounce_score_threshold = 1
        add_member(s, ml, ANN, verified=True)
    site.server.send("", verp_sender("demo", DOMAIN, ANN),
                     SAMPLE.read_bytes().replace(b"\n", b"\r\n"))
    site.server.drain()
    assert disabled(store)
    [notice] = [parse(m.data) for m in sink.messages if m.rcpt_tos == (ANN,)]
    text = notice.get_payload(decode=True).decode()
    found = re.search(r"https://lists\.example\.org/lists/demo/reenable/\S+", text)
    assert found, text
    url = site.local(found.group(0))
    for _ in range(2):  # a mail scanner, then the person
        page = site.get(url)
        assert page.status_code == 200 and "Send me the list" in page.text
    assert disabled(store)
    done = site.post(url)
    assert done.status_code == 200 and "on again" in done.text
    assert not disabled(store)
    assert "nothing to do" in site.get(url).text
    assert site.get(url[:-3] + "xyz").status_code == 404
    assert site.post(url.replace("reenable", "unsubscribe")).status_code == 404  # purposes differ
