"""Subscribing and leaving by email, double opt-in, through real SMTP on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv import moderation
from listserv.lists import find
from listserv.models import Ban, MailingList, Pending, Subscription
from listserv.store import Store
from listserv.subscriptions import MAX_PENDING_PER_DAY, add_member, find_subscription
from tests.harness import DOMAIN, Running, mail, make_list, parse, running, write_config
from tests.smtpsink import Received, SmtpSink

NEW = "nia@council.gov.uk"


@pytest.fixture
def server(store: Store, tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Running]:
    make_list(store, "demo", moderators=("mod@council.gov.uk",))
    path = write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")
    with running(config_mod.load(path, env={}), store) as srv:
        yield srv


def members(store: Store) -> int:
    with store.session() as s:
        return len(s.exec(select(Subscription)).all())


def only_mail_to(sink: SmtpSink, rcpt: str) -> list[Received]:
    return [m for m in sink.messages if m.rcpt_tos == (rcpt,)]


def ask(server: Running, sink: SmtpSink, address: str, subject: str = "") -> str:
    """Send a request and return the token from the confirmation mail it causes."""
    before = len(sink.messages)
    server.send(NEW, address, mail(NEW, address, subject))
    server.drain()
    new = [parse(m.data) for m in sink.messages[before:] if m.rcpt_tos == (NEW,)]
    confirms = [m for m in new if m["Subject"].startswith("confirm ")]
    assert len(confirms) == 1, [m["Subject"] for m in new]
    confirm = confirms[0]
    token = re.fullmatch(r"confirm ([0-9a-f]+)", confirm["Subject"])
    assert token, confirm["Subject"]
    assert confirm["Reply-To"] == f"demo-confirm+{token.group(1)}@{DOMAIN}"
    assert confirm["Auto-Submitted"] == "auto-replied"
    body = confirm.get_payload(decode=True).decode()
    assert f"https://lists.example.org/confirm/{token.group(1)}" in body
    return token.group(1)


def test_join_then_confirm_by_reply_then_welcome(server: Running, sink: SmtpSink,
                                                 store: Store) -> None:
    token = ask(server, sink, f"demo-join@{DOMAIN}")
    assert members(store) == 1  # only the moderator so far
    # Replying to the confirmation goes to its Reply-To address, subject kept.
    reply_to = f"demo-confirm+{token}@{DOMAIN}"
    server.send(NEW, reply_to, mail(NEW, reply_to, f"Re: confirm {token}", "> quoted text"))
    server.drain()
    assert members(store) == 2
    welcome = parse(only_mail_to(sink, NEW)[-1].data)
    assert welcome["Subject"] == "Welcome to demo"
    assert f"demo@{DOMAIN}" in welcome.get_payload(decode=True).decode()


def test_display_name_from_mail_is_cleaned(server: Running, sink: SmtpSink, store: Store) -> None:
    """Issue 7.20: the From display name of a subscription by mail (here an encoded word
    carrying a line break and a NUL) becomes the person's name, cleaned."""
    sender = f"=?utf-8?q?Nia=0D=0ANew=00_=E2=80=AEton?= <{NEW}>"
    server.send(NEW, f"demo-join@{DOMAIN}", mail(sender, f"demo-join@{DOMAIN}", ""))
    server.drain()
    with store.session() as s:
        assert s.exec(select(Pending.display_name)).one() == "Nia New ton"


def test_request_address_then_confirm_by_mailing_the_confirm_address(
        server: Running, sink: SmtpSink, store: Store) -> None:
    token = ask(server, sink, f"demo-request@{DOMAIN}", "subscribe")
    server.send("someone@else.example", f"demo-confirm+{token}@{DOMAIN}",
                mail("someone@else.example", f"demo-confirm+{token}@{DOMAIN}", ""))
    server.drain()
    assert members(store) == 2


def test_request_reply_lists_what_was_understood(server: Running, sink: SmtpSink) -> None:
    server.send(NEW, f"demo-request@{DOMAIN}",
                mail(NEW, f"demo-request@{DOMAIN}", "help", "help\nfrobnicate\n"))
    server.drain()
    [reply] = only_mail_to(sink, NEW)
    text = parse(reply.data).get_payload(decode=True).decode()
    assert "> help" in text and "subscribe" in text and "frobnicate" not in text


def test_confirm_via_request_subject(server: Running, sink: SmtpSink, store: Store) -> None:
    token = ask(server, sink, f"demo-subscribe@{DOMAIN}")
    server.send(NEW, f"demo-request@{DOMAIN}",
                mail(NEW, f"demo-request@{DOMAIN}", f"Re: confirm {token}"))
    server.drain()
    assert members(store) == 2


def test_token_is_single_use_and_expires(server: Running, sink: SmtpSink, store: Store) -> None:
    token = ask(server, sink, f"demo-join@{DOMAIN}")
    for _ in range(2):
        server.send(NEW, f"demo-confirm+{token}@{DOMAIN}",
                    mail(NEW, f"demo-confirm+{token}@{DOMAIN}", ""))
    server.drain()
    assert members(store) == 2
    assert len([m for m in only_mail_to(sink, NEW)
                if parse(m.data)["Subject"] == "Welcome to demo"]) == 1
    # An expired token does nothing.
    server.send(NEW, f"demo-leave@{DOMAIN}", mail(NEW, f"demo-leave@{DOMAIN}", ""))
    server.drain()
    with store.session() as s:
        pending = s.exec(select(Pending).where(Pending.action == "unsubscribe")).one()
        pending.expires_at = pending.created_at - timedelta(seconds=1)
        s.add(pending)
    token2 = re.search(r"confirm ([0-9a-f]+)",
                       parse(only_mail_to(sink, NEW)[-1].data)["Subject"]).group(1)  # type: ignore[union-attr]
    server.send(NEW, f"demo-confirm+{token2}@{DOMAIN}",
                mail(NEW, f"demo-confirm+{token2}@{DOMAIN}", ""))
    server.drain()
    assert members(store) == 2


def test_leave_is_confirmed_too(server: Running, sink: SmtpSink, store: Store) -> None:
    token = ask(server, sink, f"demo-join@{DOMAIN}")
    server.send(NEW, f"demo-confirm+{token}@{DOMAIN}",
                mail(NEW, f"demo-confirm+{token}@{DOMAIN}", ""))
    server.drain()
    assert members(store) == 2
    token = ask(server, sink, f"demo-leave@{DOMAIN}")
    assert members(store) == 2  # nothing happens until confirmed
    server.send(NEW, f"demo-confirm+{token}@{DOMAIN}",
                mail(NEW, f"demo-confirm+{token}@{DOMAIN}", ""))
    server.drain()
    assert members(store) == 1
    assert parse(only_mail_to(sink, NEW)[-1].data)["Subject"] == "You have left demo"


def test_no_subscription_bombing(server: Running, sink: SmtpSink) -> None:
    for _ in range(MAX_PENDING_PER_DAY + 3):
        server.send(NEW, f"demo-join@{DOMAIN}", mail(NEW, f"demo-join@{DOMAIN}", ""))
    server.drain()
    assert len(only_mail_to(sink, NEW)) == MAX_PENDING_PER_DAY


def test_nothing_is_sent_to_a_banned_address(server: Running, sink: SmtpSink,
                                             store: Store) -> None:
    with store.session() as s:
        s.add(Ban(pattern=NEW))
    server.send(NEW, f"demo-join@{DOMAIN}", mail(NEW, f"demo-join@{DOMAIN}", ""))
    server.send(NEW, f"demo-request@{DOMAIN}", mail(NEW, f"demo-request@{DOMAIN}", "subscribe"))
    server.drain()
    assert [m for m in sink.messages if "confirm" in parse(m.data)["Subject"]] == []


def test_auto_replies_to_request_addresses_are_not_answered(server: Running,
                                                            sink: SmtpSink) -> None:
    server.send(NEW, f"demo-request@{DOMAIN}", mail(
        NEW, f"demo-request@{DOMAIN}", "Out of office", headers={"Auto-Submitted": "auto-replied"}))
    server.send("", f"demo-join@{DOMAIN}", mail("MAILER-DAEMON@x.example",
                                                f"demo-join@{DOMAIN}", "failure"))
    server.drain()
    assert sink.messages == []


def test_owner_address_reaches_moderators(server: Running, sink: SmtpSink) -> None:
    server.send(NEW, f"demo-owner@{DOMAIN}", mail(NEW, f"demo-owner@{DOMAIN}", "A question"))
    server.drain()
    [notice] = sink.messages
    assert notice.rcpt_tos == ("mod@council.gov.uk",)
    assert parse(notice.data)["Reply-To"] == NEW


def test_a_known_non_member_can_join_and_keeps_the_moderation_setting(
        server: Running, sink: SmtpSink, store: Store) -> None:
    """Issue 7.8: after "approve always" the sender has a non-member entry; joining still asks
    for confirmation, then makes them a member (welcomed, receiving posts), moderation kept."""
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        moderation.set_future(s, ml, NEW, "accept", actor="mod@council.gov.uk")
    token = ask(server, sink, f"demo-join@{DOMAIN}")
    confirm = f"demo-confirm+{token}@{DOMAIN}"
    server.send(NEW, confirm, mail(NEW, confirm, ""))
    server.drain()
    assert parse(only_mail_to(sink, NEW)[-1].data)["Subject"] == "Welcome to demo"
    with store.session() as s:
        sub = find_subscription(s, find(s, "demo").id, NEW)  # type: ignore[union-attr,arg-type]
        assert sub is not None
        assert (sub.role, sub.delivery_mode, sub.moderation) == ("member", "each", "accept")
    sink.messages.clear()
    post = f"demo@{DOMAIN}"
    server.send("mod@council.gov.uk", post, mail("mod@council.gov.uk", post, "Hello all"))
    server.drain()
    assert only_mail_to(sink, NEW), "the new member receives posts"


def test_confirmed_add_of_a_known_non_member_makes_a_member(store: Store) -> None:
    with store.session() as s:
        ml = find(s, "demo") or MailingList(name="demo")
        s.add(ml)
        s.flush()
        moderation.set_future(s, ml, NEW, "hold", actor="cli")
        assert add_member(s, ml, NEW, actor=NEW, verified=True) is True
        assert ml.id is not None
        sub = find_subscription(s, ml.id, NEW)
        assert sub is not None and (sub.role, sub.moderation) == ("member", "hold")
        assert add_member(s, ml, NEW, actor=NEW) is False  # now really already a member


def _delivery(store: Store, email: str) -> str:
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None and ml.id is not None
        sub = find_subscription(s, ml.id, email)
        assert sub is not None
        return sub.delivery_mode


def test_a_change_of_delivery_by_mail_waits_for_the_members_confirmation(
        server: Running, sink: SmtpSink, store: Store) -> None:
    """Issue 7.9: From is forgeable, so "digest mime" only asks the member's own address."""
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        add_member(s, ml, NEW, verified=True)
    request = f"demo-request@{DOMAIN}"
    server.send("mallory@elsewhere.example", request, mail(NEW, request, "digest mime"))
    server.drain()
    assert _delivery(store, NEW) == "each", "a forged From changed nothing"
    to_new = [parse(m.data) for m in only_mail_to(sink, NEW)]
    [confirm] = [m for m in to_new if str(m["Subject"]).startswith("confirm ")]
    assert "weekly MIME digest" in confirm.get_payload(decode=True).decode()
    [results] = [m for m in to_new if "Results" in str(m["Subject"])]
    assert "confirmation request was sent" in results.get_payload(decode=True).decode()

    reply_to = str(confirm["Reply-To"])
    server.send(NEW, reply_to, mail(NEW, reply_to, f"Re: {confirm['Subject']}"))
    server.drain()
    assert _delivery(store, NEW) == "mime"
    with store.session() as s:
        assert s.exec(select(Pending).where(Pending.email == NEW)).one().action == \
            "delivery-mime"

    sink.messages.clear()
    server.send(NEW, request, mail(NEW, request, "digest mime"))
    server.drain()
    [answer] = only_mail_to(sink, NEW)
    assert "already gets the weekly digest (mime)" in parse(answer.data).get_payload(
        decode=True).decode()
