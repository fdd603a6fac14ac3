"""Posting through real SMTP on loopback: smtplib -> Commonroom -> aiosmtpd sink (smarthost)."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import Held, Message
from listserv.store import Store
from tests.harness import (
    DOMAIN,
    Running,
    cli,
    mail,
    make_list,
    parse,
    running,
    wait_until,
)
from tests.smtpsink import SmtpSink

MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk", "cat@acme.example")
MOD = "mod@council.gov.uk"


@pytest.fixture
def server(store: Store, config_path: Path) -> Iterator[Running]:
    make_list(store, "demo", moderators=(MOD,), members=MEMBERS)
    with running(config_mod.load(config_path, env={}), store) as srv:
        yield srv


def statuses(store: Store) -> list[tuple[str, str]]:
    with store.session() as s:
        return [(m.subject, m.status) for m in s.exec(select(Message).order_by(Message.id))]


def test_member_post_reaches_every_member_once_with_list_headers(server: Running,
                                                                 sink: SmtpSink) -> None:
    server.send(MEMBERS[0], f"demo@{DOMAIN}",
                mail(MEMBERS[0], f"demo@{DOMAIN}", "Which LMS do you use?", message_id="p1@x"))
    server.drain()
    got = sorted(sink.messages, key=lambda m: m.rcpt_tos)
    assert [m.rcpt_tos for m in got] == [(m,) for m in sorted((*MEMBERS, MOD))]
    for received in got:
        rcpt = received.rcpt_tos[0]
        assert received.mail_from == f"demo-bounces+{rcpt.replace('@', '=')}@{DOMAIN}"
        msg = parse(received.data)
        assert msg["Subject"] == "[demo] Which LMS do you use?"
        assert msg["List-Id"] == f'"Demo list" <demo.{DOMAIN}>'
        assert msg["List-Post"] == f"<mailto:demo@{DOMAIN}>"
        assert msg["List-Help"] == f"<mailto:demo-request@{DOMAIN}?subject=help>"
        assert msg["List-Subscribe"] == f"<mailto:demo-join@{DOMAIN}>"
        assert msg["List-Archive"] == "<https://lists.example.org/lists/demo/>"
        assert msg["Precedence"] == "list"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsub = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
        assert unsub[0].startswith("https://lists.example.org/lists/demo/unsubscribe/")
        assert unsub[1] == f"mailto:demo-leave@{DOMAIN}"
        assert msg["Message-ID"] == "<p1@x>"
        body = msg.get_payload(decode=True).decode()
        assert "Hello." in body and f"demo-leave@{DOMAIN}" in body
    # Each member's unsubscribe link is their own.
    links = {re.findall(r"<([^>]+)>", parse(m.data)["List-Unsubscribe"])[0] for m in got}
    assert len(links) == len(got)


def test_reply_subject_is_not_tagged_twice(server: Running, sink: SmtpSink) -> None:
    server.send(MEMBERS[1], f"demo@{DOMAIN}", mail(MEMBERS[1], f"demo@{DOMAIN}",
                                                   "Re: [demo] Which LMS do you use?"))
    server.drain()
    assert {parse(m.data)["Subject"] for m in sink.messages} == {
        "Re: [demo] Which LMS do you use?"}


def test_vendor_is_named_in_from(server: Running, store: Store, sink: SmtpSink,
                                 config_path: Path) -> None:
    result = cli(config_path, "members", "add", "demo", "vic@vendor.example", "--name",
                 "Vic Vendor", "--org", "Acme Ltd", "--vendor")
    assert result.exit_code == 0, result.output
    server.send("vic@vendor.example", f"demo@{DOMAIN}",
                mail("Vic <vic@vendor.example>", f"demo@{DOMAIN}", "Our new release",
                     # a pointer: the participation policy lets vendor staff post it straight away
                     "Release notes: https://vendor.example/releases/5\n"))
    server.drain()
    froms = {parse(m.data)["From"] for m in sink.messages}
    assert froms == {'"Vic Vendor (Acme Ltd, vendor)" <vic@vendor.example>'}


def test_vendor_with_line_breaks_in_name_still_gets_posts_delivered(
        server: Running, store: Store, sink: SmtpSink, config_path: Path) -> None:
    """Issue 7.20: the name is cleaned where it enters, so the From header can be built."""
    result = cli(config_path, "members", "add", "demo", "vic@vendor.example", "--name",
                 "Vic\r\nBcc: all@example.org", "--org", "Acme\nLtd", "--vendor")
    assert result.exit_code == 0, result.output
    server.send("vic@vendor.example", f"demo@{DOMAIN}",
                mail("Vic <vic@vendor.example>", f"demo@{DOMAIN}", "Our new release",
                     "Release notes: https://vendor.example/releases/5\n"))
    server.drain()
    assert len(sink.messages) == len(MEMBERS) + 2  # every member, the moderator and Vic
    froms = {parse(m.data)["From"] for m in sink.messages}
    assert froms == {'"Vic Bcc: all@example.org (Acme Ltd, vendor)" <vic@vendor.example>'}
    assert all(parse(m.data)["Bcc"] is None for m in sink.messages)


def test_unknown_address_refused_at_rcpt(server: Running) -> None:
    for rcpt in (f"nolist@{DOMAIN}", "demo@other.example", f"demo-bogus@{DOMAIN}"):
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail("x@example.org")
            code, text = client.rcpt(rcpt)
            assert code == 550 and b"5.1.1" in text, (rcpt, code, text)


def test_oversize_refused_with_552(server: Running) -> None:
    big = mail(MEMBERS[0], f"demo@{DOMAIN}", "big", ("x" * 70 + "\n") * 4300)
    # A client that declares SIZE is refused at MAIL FROM ...
    with pytest.raises(smtplib.SMTPSenderRefused) as err, \
            smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail(MEMBERS[0], f"demo@{DOMAIN}", big)
    assert err.value.smtp_code == 552
    # ... and one that does not is refused after DATA.
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        assert client.mail(MEMBERS[0])[0] == 250
        assert client.rcpt(f"demo@{DOMAIN}")[0] == 250
        code, _ = client.data(big)
    assert code == 552


@pytest.mark.parametrize("headers,rule", [
    ({"List-Id": f"Demo <demo.{DOMAIN}>"}, "loop"),
    ({"X-Loop": f"demo@{DOMAIN}"}, "loop"),
    ({"Auto-Submitted": "auto-replied"}, "auto-generated"),
    ({"Precedence": "bulk"}, "auto-generated"),
])
def test_loops_and_automatic_mail_are_discarded_silently(server: Running, sink: SmtpSink,
                                                         store: Store, headers: dict[str, str],
                                                         rule: str) -> None:
    server.send(MEMBERS[0], f"demo@{DOMAIN}",
                mail(MEMBERS[0], f"demo@{DOMAIN}", "Out of office", headers=headers))
    server.drain()
    assert sink.messages == []
    with store.session() as s:
        msg = s.exec(select(Message)).one()
    assert msg.status == "discarded" and msg.reason


def test_banned_sender_discarded(server: Running, sink: SmtpSink, store: Store) -> None:
    from listserv.models import Ban

    with store.session() as s:
        s.add(Ban(pattern=r"^.*@spam\.example$"))
    server.send("x@spam.example", f"demo@{DOMAIN}",
                mail("x@spam.example", f"demo@{DOMAIN}", "Cheap pills"))
    server.drain()
    assert sink.messages == []
    assert statuses(store) == [("Cheap pills", "discarded")]


def test_nonmember_post_is_held_then_approved_once(server: Running, sink: SmtpSink,
                                                   store: Store, config_path: Path) -> None:
    outsider = "dan@elsewhere.example"
    server.send(outsider, f"demo@{DOMAIN}",
                mail(outsider, f"demo@{DOMAIN}", "Can I ask about CRMs?"))
    server.drain()
    by_rcpt = {m.rcpt_tos[0]: parse(m.data) for m in sink.messages}
    assert set(by_rcpt) == {MOD, outsider}
    notice = by_rcpt[MOD]
    assert "held post" in notice["Subject"] and notice["Auto-Submitted"] == "auto-generated"
    attached = [p for p in notice.walk() if p.get_content_type() == "message/rfc822"]
    assert attached, "the held post is attached for the moderator"
    told = by_rcpt[outsider]
    assert "waiting for a moderator" in told["Subject"]
    assert "not a member" in told.get_payload(decode=True).decode()

    listing = cli(config_path, "queue", "list", "demo")
    assert listing.exit_code == 0 and "Can I ask about CRMs?" in listing.output
    with store.session() as s:
        held_id = s.exec(select(Held)).one().id
    sink.messages.clear()
    ok = cli(config_path, "queue", "approve", str(held_id))
    assert ok.exit_code == 0, ok.output
    again = cli(config_path, "queue", "approve", str(held_id))
    assert again.exit_code == 1 and "already handled" in again.output
    server.app.worker.wake()  # type: ignore[union-attr]
    wait_until(lambda: len(sink.messages) >= 4, what="the approved post")
    server.drain()
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted((*MEMBERS, MOD))
    assert cli(config_path, "queue", "list", "demo").output.startswith("nothing is held")


def test_rejected_sender_gets_the_reason(server: Running, sink: SmtpSink, store: Store,
                                         config_path: Path) -> None:
    assert cli(config_path, "lists", "set", "demo", "nonmember_action", "reject").exit_code == 0
    server.send("eve@elsewhere.example", f"demo@{DOMAIN}",
                mail("eve@elsewhere.example", f"demo@{DOMAIN}", "Hello all"))
    server.drain()
    assert [m.rcpt_tos for m in sink.messages] == [("eve@elsewhere.example",)]
    notice = parse(sink.messages[0].data)
    assert "members only" in notice.get_payload(decode=True).decode()


def test_administrivia_to_post_address_is_held(server: Running, sink: SmtpSink,
                                               store: Store) -> None:
    server.send(MEMBERS[0], f"demo@{DOMAIN}", mail(MEMBERS[0], f"demo@{DOMAIN}", "unsubscribe"))
    server.drain()
    assert statuses(store) == [("unsubscribe", "held")]
    assert {m.rcpt_tos[0] for m in sink.messages} == {MOD, MEMBERS[0]}


def test_message_without_message_id_gets_one(server: Running, store: Store) -> None:
    server.send(MEMBERS[0], f"demo@{DOMAIN}", mail(MEMBERS[0], f"demo@{DOMAIN}", "No id"))
    with store.session() as s:
        msg = s.exec(select(Message)).one()
    assert msg.message_id.endswith(f"@{DOMAIN}") and b"Message-ID:" in msg.raw
    assert msg.thread_id is not None


def test_two_lists_in_one_transaction(server: Running, store: Store, sink: SmtpSink) -> None:
    make_list(store, "other", members=("zed@council.gov.uk",))
    server.send(MEMBERS[0], [f"demo@{DOMAIN}", f"other@{DOMAIN}"],
                mail(MEMBERS[0], f"demo@{DOMAIN}, other@{DOMAIN}", "Cross-post"))
    server.drain()
    rcpts = sorted(m.rcpt_tos[0] for m in sink.messages)
    # ann is a member of demo only; other's one member is not.
    assert rcpts == sorted((*MEMBERS, MOD, MEMBERS[0]))


@pytest.mark.parametrize("headers", [
    {"List-Id": f"Web demo <webdemo.{DOMAIN}>"},
    {"X-Loop": f"webdemo@{DOMAIN}"},
])
def test_another_lists_id_or_loop_address_is_not_a_loop(server: Running, sink: SmtpSink,
                                                        store: Store,
                                                        headers: dict[str, str]) -> None:
    # Issue 7.1: "demo" is a substring of "webdemo"; a post forwarded from that list is new here.
    make_list(store, "webdemo")
    server.send(MEMBERS[0], f"demo@{DOMAIN}",
                mail(MEMBERS[0], f"demo@{DOMAIN}", "Seen on webdemo", headers=headers))
    server.drain()
    assert statuses(store) == [("Seen on webdemo", "accepted")]
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted((*MEMBERS, MOD))


@pytest.mark.parametrize("author,nonmember_action", [
    (MEMBERS[0], "hold"),  # a member's address in From: still not a post
    ("eve@elsewhere.example", "hold"),  # would be held, and the moderators and Eve told
    ("eve@elsewhere.example", "reject"),  # would be rejected, and Eve told
])
def test_null_sender_mail_to_the_post_address_is_never_posted_nor_answered(
        server: Running, sink: SmtpSink, store: Store, config_path: Path, author: str,
        nonmember_action: str) -> None:
    # Issue 7.2: MAIL FROM:<> is a bounce or an auto-reply (RFC 5321 4.5.5), whatever From says.
    assert cli(config_path, "lists", "set", "demo", "nonmember_action",
               nonmember_action).exit_code == 0
    server.send("", f"demo@{DOMAIN}", mail(author, f"demo@{DOMAIN}", "Your message to demo"))
    server.drain()
    assert sink.messages == []
    with store.session() as s:
        msg = s.exec(select(Message)).one()
        assert s.exec(select(Held)).all() == []
    assert (msg.status, msg.envelope_from) == ("discarded", "")
    assert "MAIL FROM:<>" in msg.reason


def test_post_without_date_is_delivered_with_the_time_it_was_received(server: Running,
                                                                      sink: SmtpSink,
                                                                      store: Store) -> None:
    # Issue 7.4: RFC 5322 3.6 requires a Date; as an MTA would, the time of receipt is added.
    from email.utils import parsedate_to_datetime

    from listserv.models import utcnow

    raw = mail(MEMBERS[0], f"demo@{DOMAIN}", "No date").replace(
        b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n", b"")
    assert b"Date:" not in raw
    before = utcnow().replace(microsecond=0)
    server.send(MEMBERS[0], f"demo@{DOMAIN}", raw)
    after = utcnow()
    server.drain()
    assert len(sink.messages) == len(MEMBERS) + 1
    for received in sink.messages:
        dates = parse(received.data).get_all("Date")
        assert dates is not None and len(dates) == 1
        assert before <= parsedate_to_datetime(dates[0]) <= after
    with store.session() as s:
        msg = s.exec(select(Message)).one()
    assert msg.date is not None and before <= msg.date <= after
    assert msg.raw.count(b"Date:") == 1 and msg.raw.endswith(raw.split(b"\r\n\r\n", 1)[1])


def test_only_accepted_posts_join_or_name_a_thread(server: Running, sink: SmtpSink,
                                                   store: Store, config_path: Path) -> None:
    # Issue 7.3: a held, rejected or discarded reply with a forged old Date renamed the thread.
    from listserv.models import Ban, Thread, ThreadRef

    server.send(MEMBERS[0], f"demo@{DOMAIN}",
                mail(MEMBERS[0], f"demo@{DOMAIN}", "Which LMS do you use?", message_id="root@x"))
    forged = {"References": "<root@x>", "Date": "Mon, 01 Jan 2001 00:00:00 +0000"}

    def reply(sender: str, subject: str, ident: str) -> None:
        raw = mail(sender, f"demo@{DOMAIN}", subject, message_id=ident, headers=forged)
        server.send(sender, f"demo@{DOMAIN}", raw.replace(
            b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n", b""))

    reply("dan@elsewhere.example", "Held: buy our LMS", "held@x")  # a non-member: held
    with store.session() as s:
        s.add(Ban(pattern="spam@bad.example"))
    reply("spam@bad.example", "Discarded: cheap pills", "discarded@x")
    assert cli(config_path, "lists", "set", "demo", "nonmember_action", "reject").exit_code == 0
    reply("eve@elsewhere.example", "Rejected: hello all", "rejected@x")
    server.drain()
    with store.session() as s:
        threads = s.exec(select(Thread)).all()
        assert [(t.subject, t.post_count) for t in threads] == [("Which LMS do you use?", 1)]
        assert {r.ref for r in s.exec(select(ThreadRef))} == {"root@x"}
        by_id = {m.message_id: m for m in s.exec(select(Message))}
        assert [by_id[i].status for i in ("held@x", "discarded@x", "rejected@x")] == [
            "held", "discarded", "rejected"]
        assert all(by_id[i].thread_id is None for i in ("held@x", "discarded@x", "rejected@x"))
        assert all(by_id[i].accepted_at is None for i in ("held@x", "discarded@x", "rejected@x"))
        root = by_id["root@x"]
        assert root.thread_id == threads[0].id and root.accepted_at is not None
        held_id = s.exec(select(Held)).one().id

    # Approved, a post joins (and, being the earliest, names) its thread at that moment.
    assert cli(config_path, "queue", "approve", str(held_id)).exit_code == 0
    with store.session() as s:
        thread = s.exec(select(Thread)).one()
        approved = s.exec(select(Message).where(Message.message_id == "held@x")).one()
        assert (approved.thread_id, thread.post_count) == (thread.id, 2)
        assert thread.subject == "Held: buy our LMS"  # a moderator let its date stand
        assert approved.accepted_at is not None and approved.accepted_at > root.accepted_at
        assert {r.ref for r in s.exec(select(ThreadRef))} == {"root@x", "held@x"}
