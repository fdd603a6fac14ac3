"""The links mail carries, followed over HTTP against the running server: /confirm/TOKEN,
/lists/LIST/unsubscribe/TOKEN (with RFC 8058 one-click) and /lists/LIST/delivery/TOKEN."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from listserv import links
from listserv.lists import find
from listserv.models import DeliveryMode, Pending, Subscription
from listserv.store import Store
from listserv.subscriptions import add_member, find_subscription, is_member
from tests.harness import DOMAIN, mail, make_list, wait_until
from tests.smtpsink import SmtpSink
from tests.web_harness import Site, confirm_link, mails_to

ANN = "ann@example.org"
BOB = "bob@example.org"


def member(store: Store, email: str, list_name: str = "demo") -> bool:
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None and ml.id is not None
        return is_member(s, ml.id, email)


def delivery_mode(store: Store, email: str) -> str:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, email)
        assert sub is not None
        return sub.delivery_mode


def join(store: Store, email: str, list_name: str = "demo") -> None:
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        add_member(s, ml, email, verified=True)


def token(store: Store, email: str, list_name: str = "demo", purpose: str = "unsub") -> str:
    return links.unsubscribe_token(store.secret(), list_name, email, purpose)


# --- /confirm/TOKEN ----------------------------------------------------------------------

def test_confirm_get_changes_nothing_and_post_joins_once(site: Site, sink: SmtpSink,
                                                         store: Store) -> None:
    site.post("/lists/demo/subscribe", data={"email": ANN})
    url = site.local(confirm_link(site, sink, ANN))
    for _ in range(3):  # a mail scanner, a preview, the person
        page = site.get(url)
        assert page.status_code == 200 and "join demo" in page.text and ANN in page.text
        assert '<form class="action" method="post">' in page.text
    assert not member(store, ANN)
    done = site.post(url)
    assert done.status_code == 200 and f"{ANN} is now a member of demo" in done.text
    assert member(store, ANN)
    site.server.drain()
    assert [m["Subject"] for m in mails_to(sink, ANN)][-1] == "Welcome to demo"
    again = site.post(url)
    assert again.status_code == 410 and "already been used" in again.text
    assert site.get(url).status_code == 410


def test_unknown_or_expired_confirmation_gets_a_kind_page(site: Site, sink: SmtpSink,
                                                         store: Store) -> None:
    unknown = site.get("/confirm/" + "0" * 36)
    assert unknown.status_code == 404 and "not known" in unknown.text
    assert "LIST-join" in unknown.text  # says what to do instead
    assert site.post("/confirm/" + "0" * 36).status_code == 404
    site.post("/lists/demo/subscribe", data={"email": ANN})
    url = site.local(confirm_link(site, sink, ANN))
    with store.session() as s:
        for p in s.exec(select(Pending)).all():
            p.expires_at = p.created_at - timedelta(seconds=1)
            s.add(p)
    assert site.get(url).status_code == 410 and "expired" in site.get(url).text
    assert site.post(url).status_code == 410 and not member(store, ANN)


def test_confirming_a_leave_request_from_the_web(site: Site, sink: SmtpSink, store: Store) -> None:
    join(store, ANN)
    site.server.send(ANN, f"demo-leave@{DOMAIN}", mail(ANN, f"demo-leave@{DOMAIN}", "leave"))
    url = site.local(confirm_link(site, sink, ANN))
    assert "leave demo" in site.get(url).text and member(store, ANN)
    assert site.post(url).status_code == 200 and not member(store, ANN)


# --- /lists/LIST/unsubscribe/TOKEN -------------------------------------------------------

def test_one_click_unsubscribe_from_a_delivered_post(site: Site, sink: SmtpSink,
                                                     store: Store) -> None:
    """RFC 8058: the mailbox provider POSTs List-Unsubscribe=One-Click to the header's URL,
    with no cookies and nothing else; the member is gone at once, with a 200."""
    join(store, ANN)
    site.server.send(BOB, f"demo@{DOMAIN}", mail(ANN, f"demo@{DOMAIN}", "Hello all"))
    site.server.drain()
    wait_until(lambda: mails_to(sink, ANN), what="the post to reach ann")
    post = next(m for m in mails_to(sink, ANN) if "Hello all" in str(m["Subject"]))
    assert post["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(https://[^>]+)>", post["List-Unsubscribe"])
    assert url, post["List-Unsubscribe"]
    answer = site.client.post(site.local(url.group(1)), content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "set-cookie" not in answer.headers
    assert not member(store, ANN)
    site.server.drain()
    assert mails_to(sink, ANN)[-1]["Subject"] == "You have left demo"
    # Mailbox providers retry: a second one-click is still a 200 and changes nothing.
    assert site.client.post(site.local(url.group(1)), content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}
                            ).status_code == 200


def _main(html: str) -> str:
    return html.split("<main", 1)[1]


def test_unsubscribe_get_shows_one_button_and_changes_nothing(site: Site, store: Store) -> None:
    join(store, ANN)
    page = site.get(f"/lists/demo/unsubscribe/{token(store, ANN)}")
    assert page.status_code == 200 and ANN in page.text
    # The page's own buttons (the header's search box is on every page).
    assert _main(page.text).count("<button") == 1 and 'method="post"' in page.text
    assert member(store, ANN)
    assert site.post(f"/lists/demo/unsubscribe/{token(store, ANN)}").status_code == 200
    assert not member(store, ANN)
    gone = site.get(f"/lists/demo/unsubscribe/{token(store, ANN)}")
    assert gone.status_code == 200 and "nothing to do" in gone.text
    assert "<button" not in _main(gone.text)


def test_member_tokens_work_only_for_their_member_list_and_purpose(site: Site,
                                                                   store: Store) -> None:
    make_list(store, "other")
    for who, where in ((ANN, "demo"), (BOB, "demo"), (ANN, "other")):
        join(store, who, where)
    ann_demo = token(store, ANN)
    wrong = {
        "another list": f"/lists/other/unsubscribe/{ann_demo}",
        "the delivery purpose": f"/lists/demo/unsubscribe/{token(store, ANN, purpose='delivery')}",
        "a changed address": "/lists/demo/unsubscribe/" + links._b64(BOB.encode()) + "."
                             + ann_demo.split(".")[1],
        "a list that does not exist": f"/lists/nope/unsubscribe/{ann_demo}",
        "a confirmation code": "/lists/demo/unsubscribe/" + "a" * 36,
    }
    for what, path in wrong.items():
        assert site.get(path).status_code == 404, what
        answer = site.post(path, content=b"List-Unsubscribe=One-Click")
        assert answer.status_code == 404 and "not valid" in answer.text, what
    unsub_as_delivery = site.post(f"/lists/demo/delivery/{ann_demo}", data={"leave": "1"})
    assert unsub_as_delivery.status_code == 404
    assert site.post(f"/confirm/{ann_demo}").status_code == 404
    assert all(member(store, who, where) for who, where in ((ANN, "demo"), (BOB, "demo"), (ANN, "other")))


# --- /lists/LIST/delivery/TOKEN ----------------------------------------------------------

@pytest.mark.parametrize("mode", [m for m in DeliveryMode if m is not DeliveryMode.EACH])
def test_the_member_changes_delivery_on_their_page(site: Site, store: Store,
                                                   mode: DeliveryMode) -> None:
    join(store, ANN)
    path = f"/lists/demo/delivery/{token(store, ANN, purpose='delivery')}"
    page = site.get(path)
    assert page.status_code == 200 and 'value="each" checked' in page.text
    assert delivery_mode(store, ANN) == "each"
    saved = site.post(path, data={"mode": mode.value})
    assert saved.status_code == 200 and f'value="{mode.value}" checked' in saved.text
    assert "will get" in saved.text
    assert delivery_mode(store, ANN) == mode.value


def test_the_delivery_page_refuses_an_unknown_mode_and_lets_the_member_leave(
        site: Site, sink: SmtpSink, store: Store) -> None:
    join(store, ANN)
    path = f"/lists/demo/delivery/{token(store, ANN, purpose='delivery')}"
    bad = site.post(path, data={"mode": "weekly-ish"})
    assert bad.status_code == 400 and delivery_mode(store, ANN) == "each"
    left = site.post(path, data={"leave": "1"})
    assert left.status_code == 200 and "has left demo" in left.text and not member(store, ANN)
    site.server.drain()
    assert mails_to(sink, ANN)[-1]["Subject"] == "You have left demo"
    assert "not a member" in site.get(path).text


def test_unsubscribing_is_audited_as_from_the_web(site: Site, store: Store) -> None:
    join(store, ANN)
    site.post(f"/lists/demo/unsubscribe/{token(store, ANN)}")
    from listserv.models import AuditEntry

    with store.session() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.action == "unsubscribed")).all()
        assert [(r.actor, r.target, r.detail) for r in rows] == [(ANN, ANN, "via web")]
        assert s.exec(select(Subscription)).all() != []  # the moderator is still there
