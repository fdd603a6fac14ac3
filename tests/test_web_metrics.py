"""/metrics over HTTP against the running server (Prometheus text, parsed with
prometheus-client's own parser), and the store facts it reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from listserv import accept, inbound_queue
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.lists import find
from listserv.models import Action, DigestPeriod, Held, Outbox, OutboxState, utcnow
from listserv.moderation import act
from listserv.store import Store
from listserv.subscriptions import add_member
from listserv.web.metrics import read_facts
from tests.harness import DOMAIN, mail, make_list, wait_until
from tests.smtpsink import SmtpSink
from tests.web_harness import Site

ANN, BOB = "ann@example.org", "bob@example.org"


def scrape(site: Site) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    page = site.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(page.text) for s in family.samples}


def test_metrics_count_posts_deliveries_and_held_posts(site: Site, sink: SmtpSink,
                                                       store: Store) -> None:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        add_member(s, ml, ANN, verified=True)
        add_member(s, ml, BOB, verified=True)
    sink.rcpt_replies[BOB] = 451  # bob's mailbox is busy: his copies are retried
    before = scrape(site)
    assert before[("commonroom_posts_total", (("outcome", "accepted"),))] == 0
    site.server.send(ANN, f"demo@{DOMAIN}", mail(ANN, f"demo@{DOMAIN}", "One"))
    site.server.send("stranger@example.net", f"demo@{DOMAIN}",
                     mail("stranger@example.net", f"demo@{DOMAIN}", "Two"))
    site.server.drain()
    after = scrape(site)
    assert after[("commonroom_posts_total", (("outcome", "accepted"),))] == 1
    assert after[("commonroom_posts_total", (("outcome", "held"),))] == 1
    assert after[("commonroom_held_posts_waiting", ())] == 1
    sent = after[("commonroom_deliveries_total", (("outcome", "sent"),))]
    assert sent >= 2  # ann's copy, the moderator's, the held notice
    assert after[("commonroom_deliveries_total", (("outcome", "retried"),))] == 1
    assert after[("commonroom_outbox_rows", (("state", "pending"),))] == 1  # bob's, later
    assert after[("commonroom_outbox_due_rows", ())] == 0
    with store.session() as s:
        held = s.exec(select(Held)).one()
        assert held.id is not None
        act(s, site.server.cfg, held.id, Action.REJECT, actor="mod@example.org", reason="no")
    wait_until(lambda: scrape(site)[("commonroom_posts_total", (("outcome", "rejected"),))] == 1,
               what="the rejection to be counted")
    final = scrape(site)
    assert final[("commonroom_held_posts_waiting", ())] == 0
    assert final[("commonroom_inbound_waiting", ())] == 0
    assert final[("commonroom_posts_total", (("outcome", "held"),))] == 1  # held once, still


@pytest.mark.parametrize("overdue", [0, 90])
def test_outbox_depth_and_the_age_of_the_oldest_due_row(store: Store, overdue: int) -> None:
    make_list(store, "demo")
    now = utcnow()
    with store.session() as s:
        for due_in in (-overdue, -10, 3600):  # two due (one overdue by `overdue`), one later
            s.add(Outbox(recipient="x@example.org", sender="b@example.org", payload=b"x",
                         next_attempt_at=now + timedelta(seconds=due_in)))
        s.add(Outbox(recipient="y@example.org", sender="b@example.org", payload=b"x",
                     state=OutboxState.SENT.value, next_attempt_at=now - timedelta(days=1)))
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        s.add(DigestPeriod(list_id=ml.id, period_start=now - timedelta(days=7), period_end=now,
                           trigger="cli"))
    with store.read_session() as s:
        facts = read_facts(s, now)
    assert facts.outbox == {"pending": 3, "sending": 0}
    assert facts.due == 2
    assert facts.oldest_due_age == pytest.approx(max(overdue, 10), abs=1)
    assert facts.digest_runs == {"cli": 1}


def test_accepted_mail_not_handled_yet_is_counted(store: Store) -> None:
    make_list(store, "demo")
    d = accept.Delivery(envelope_from=ANN, destinations=(Destination("demo", Kind.POST),),
                         raw=mail(ANN, f"demo@{DOMAIN}", "Waiting"))
    with store.session() as s:
        assert read_facts(s, utcnow()).inbound == 0
        for _ in range(2):
            inbound_queue.enqueue(s, accept.prepare(Config(), d), False)
    with store.read_session() as s:
        assert read_facts(s, utcnow()).inbound == 2
