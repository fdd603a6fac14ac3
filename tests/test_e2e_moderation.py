"""Moderation through real SMTP on loopback: replies to held notices, the audit log, expiry,
emergency moderation, bans and rate limits. SQLite, and PostgreSQL where configured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message as EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv import moderation
from listserv.models import AuditEntry, Ban, Held, Message, SenderNotice, utcnow
from listserv.store import Store
from tests.harness import DOMAIN, Running, cli, mail, make_list, parse, running, wait_until
from tests.smtpsink import SmtpSink

MEMBERS = ("ann@council.gov.uk", "bob@district.gov.uk")
MOD = "mod@council.gov.uk"
OUTSIDER = "dan@elsewhere.example"
POST = f"demo@{DOMAIN}"


@pytest.fixture
def server(store: Store, config_path: Path) -> Iterator[Running]:
    make_list(store, "demo", moderators=(MOD,), members=MEMBERS)
    with running(config_mod.load(config_path, env={}), store) as srv:
        yield srv


def to(sink: SmtpSink, rcpt: str) -> list[EmailMessage]:
    return [parse(m.data) for m in sink.messages if m.rcpt_tos == (rcpt,)]


def body(msg: EmailMessage) -> str:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def hold_one(server: Running, sink: SmtpSink, subject: str = "Can I ask about CRMs?",
             sender: str = OUTSIDER) -> tuple[int, str]:
    """A non-member's post, held; returns the held id and the notice's reply address."""
    server.send(sender, POST, mail(sender, POST, subject))
    server.drain()
    notice = next(m for m in to(sink, MOD) if subject in str(m["Subject"]))
    reply_to = parseaddr(str(notice["Reply-To"]))[1]
    assert re.fullmatch(rf"demo-confirm\+[\w-]+@{re.escape(DOMAIN)}", reply_to), reply_to
    held_id = int(re.search(r"held post (\d+)", str(notice["Subject"])).group(1))  # type: ignore[union-attr]
    sink.messages.clear()
    return held_id, reply_to


def reply(server: Running, sender: str, address: str, first_line: str) -> None:
    text = f"{first_line}\n\n> A post to {POST} is held for review\n"
    server.send(sender, address, mail(sender, address, "Re: held post", text))
    server.drain()


def audit_actions(store: Store) -> list[tuple[str, str]]:
    with store.session() as s:
        return [(e.actor, e.action) for e in s.exec(select(AuditEntry).order_by(AuditEntry.id))]


def delivered_to(sink: SmtpSink, subject: str) -> list[str]:
    """Who received the post itself (not notices about it)."""
    return sorted(m.rcpt_tos[0] for m in sink.messages
                  if str(parse(m.data)["Subject"]).startswith(f"[demo] {subject}")
                  or str(parse(m.data)["Subject"]).startswith(f"[demo] Re: {subject}"))


def test_moderator_approves_by_replying_and_a_second_reply_changes_nothing(
        server: Running, sink: SmtpSink, store: Store, config_path: Path) -> None:
    held_id, address = hold_one(server, sink)
    reply(server, MOD, address, "approve")
    wait_until(lambda: len(delivered_to(sink, "Can I ask about CRMs?")) == 3, what="the approved post")
    assert delivered_to(sink, "Can I ask about CRMs?") == sorted((*MEMBERS, MOD))
    outcome = [m for m in to(sink, MOD) if "[demo]" not in str(m["Subject"])
               or "held post" in str(m["Subject"])]
    assert any("approved" in body(m) for m in outcome)
    assert not to(sink, OUTSIDER), "an approved sender gets nothing extra"

    sink.messages.clear()
    reply(server, MOD, address, "approve")
    assert delivered_to(sink, "Can I ask about CRMs?") == [], "approving twice delivers once"
    assert "already handled" in body(to(sink, MOD)[0])
    assert ("mod@council.gov.uk", "held-accept") in audit_actions(store)
    log = cli(config_path, "audit", "demo")
    assert log.exit_code == 0
    assert re.search(rf"{MOD}\theld-accept\theld {held_id} ", log.output), log.output


def test_reject_by_reply_tells_the_sender_the_reason(server: Running, sink: SmtpSink,
                                                     store: Store) -> None:
    _, address = hold_one(server, sink)
    reply(server, MOD, address, "reject Please ask this on the suppliers' list instead")
    told = wait_until(lambda: to(sink, OUTSIDER), what="the rejection notice")
    assert "suppliers' list" in body(told[0])
    with store.session() as s:
        assert s.exec(select(Message.status).where(Message.from_address == OUTSIDER)).one() == \
            "rejected"
    assert delivered_to(sink, "Can I ask about CRMs?") == []


def test_forged_reply_from_a_non_moderator_is_refused_and_audited(
        server: Running, sink: SmtpSink, store: Store) -> None:
    held_id, address = hold_one(server, sink)
    # The sender has seen nothing with the token, but even with it a non-moderator is refused.
    reply(server, OUTSIDER, address, "approve")
    reply(server, MEMBERS[0], address, "approve")
    assert delivered_to(sink, "Can I ask about CRMs?") == []
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None and held.resolved_at is None
    refused = [a for a in audit_actions(store) if a[1] == "reply-refused"]
    assert refused == [(OUTSIDER, "reply-refused"), (MEMBERS[0], "reply-refused")]


def test_a_wrong_token_acts_on_nothing(server: Running, sink: SmtpSink, store: Store) -> None:
    held_id, _ = hold_one(server, sink)
    reply(server, MOD, f"demo-confirm+notatoken12345@{DOMAIN}", "approve")
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None and held.resolved_at is None


def test_approve_always_accepts_that_sender_from_then_on(server: Running, sink: SmtpSink,
                                                         store: Store) -> None:
    _, address = hold_one(server, sink)
    reply(server, MOD, address, "approve always")
    wait_until(lambda: len(delivered_to(sink, "Can I ask about CRMs?")) == 3, what="the approved post")
    sink.messages.clear()
    server.send(OUTSIDER, POST, mail(OUTSIDER, POST, "A second question"))
    server.drain()
    assert delivered_to(sink, "A second question") == sorted((*MEMBERS, MOD))
    assert (MOD, "moderation-set") in audit_actions(store)


def test_cli_approve_with_future_hold_holds_the_next_post(server: Running, sink: SmtpSink,
                                                          store: Store, config_path: Path) -> None:
    server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Member post"))
    server.drain()
    assert len(delivered_to(sink, "Member post")) == 3
    held_id, _ = hold_one(server, sink)
    assert cli(config_path, "queue", "approve", str(held_id), "--future", "hold").exit_code == 0
    sink.messages.clear()
    server.send(OUTSIDER, POST, mail(OUTSIDER, POST, "Another one"))
    server.drain()
    assert delivered_to(sink, "Another one") == []
    assert "Another one" in cli(config_path, "queue", "list", "demo").output


def test_unhandled_post_reminds_once_then_expires_to_the_lists_action(
        server: Running, sink: SmtpSink, store: Store, config_path: Path) -> None:
    held_id, _ = hold_one(server, sink)
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None
        held.held_at = utcnow() - timedelta(days=4)  # past half of the 7 days
        s.add(held)
    assert server.app.sweep_once() == (1, 0)
    assert server.app.sweep_once() == (0, 0), "reminded once only"
    server.drain()
    reminders = to(sink, MOD)
    assert len(reminders) == 1 and "reminder" in str(reminders[0]["Subject"])
    assert "rejected" in body(reminders[0])

    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None
        held.held_at = utcnow() - timedelta(days=8)
        s.add(held)
        for notice in s.exec(select(SenderNotice)):  # the held notice was sent 8 days ago too
            notice.sent_at -= timedelta(days=8)
            s.add(notice)
    sink.messages.clear()
    assert cli(config_path, "queue", "sweep").output.strip() == "reminded 0, expired 1"
    server.app.worker.wake()  # type: ignore[union-attr]
    told = wait_until(lambda: to(sink, OUTSIDER), what="the expiry notice to the sender")
    assert "within 7 days" in body(told[0])
    assert ("expiry", "held-reject") in audit_actions(store)
    gone = cli(config_path, "queue", "approve", str(held_id))
    assert gone.exit_code == 1 and "already handled" in gone.output


def test_expiry_can_accept_instead(server: Running, sink: SmtpSink, store: Store,
                                   config_path: Path) -> None:
    assert cli(config_path, "lists", "set", "demo", "expiry_action", "accept").exit_code == 0
    held_id, _ = hold_one(server, sink)
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None
        held.held_at = utcnow() - timedelta(days=30)
        s.add(held)
    assert server.app.sweep_once() == (0, 1)
    server.drain()
    assert delivered_to(sink, "Can I ask about CRMs?") == sorted((*MEMBERS, MOD))


def test_emergency_moderation_holds_every_post_until_lifted(
        server: Running, sink: SmtpSink, store: Store, config_path: Path) -> None:
    assert cli(config_path, "lists", "set", "demo", "emergency", "on").exit_code == 0
    server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "During the incident"))
    server.drain()
    assert delivered_to(sink, "During the incident") == []
    assert "emergency" in cli(config_path, "queue", "list", "demo").output
    assert cli(config_path, "lists", "set", "demo", "emergency", "off").exit_code == 0
    server.send(MEMBERS[1], POST, mail(MEMBERS[1], POST, "After the incident"))
    server.drain()
    assert delivered_to(sink, "After the incident") == sorted((*MEMBERS, MOD))


def test_bans_by_pattern_per_list_and_site_wide_with_expiry(
        server: Running, sink: SmtpSink, store: Store, config_path: Path) -> None:
    added = cli(config_path, "bans", "add", "*@district.gov.uk", "--list", "demo",
                "--reason", "compromised mailbox", "--expires", "2d")
    assert added.exit_code == 0, added.output
    site = cli(config_path, "bans", "add", "ann@council.gov.uk")
    assert site.exit_code == 0 and "every list" in site.output
    for sender in MEMBERS:
        server.send(sender, POST, mail(sender, POST, f"Post from {sender}"))
    server.drain()
    assert [m for m in sink.messages if "[demo]" in str(parse(m.data)["Subject"])] == []
    listing = cli(config_path, "bans", "list", "--list", "demo")
    assert "*@district.gov.uk" in listing.output and "(site-wide)\tann@council.gov.uk" in listing.output

    # The list ban runs out: bob posts again; ann's site-wide ban is lifted by id.
    with store.session() as s:
        ban = s.exec(select(Ban).where(Ban.list_id.is_not(None))).one()  # type: ignore[union-attr]
        ban.expires_at = utcnow() - timedelta(minutes=1)
        s.add(ban)
        site_id = s.exec(select(Ban.id).where(Ban.list_id.is_(None))).one()  # type: ignore[union-attr]
    assert cli(config_path, "bans", "remove", str(site_id)).exit_code == 0
    for sender in MEMBERS:
        server.send(sender, POST, mail(sender, POST, f"Again from {sender}"))
    server.drain()
    assert len(delivered_to(sink, "Again from")) == 6
    actions = [a for _, a in audit_actions(store)]
    assert actions.count("ban-added") == 2 and "ban-removed" in actions


@pytest.mark.parametrize("args,message", [
    (("bans", "add", "not an address"), "neither an address"),
    (("bans", "add", "^(unclosed"), "not a valid regular expression"),
    (("bans", "add", "x@y.example", "--expires", "soonish"), "not an expiry"),
    (("bans", "remove", "999"), "no ban number 999"),
    (("members", "set", "demo", "ann@council.gov.uk"), "nothing to change"),
    (("members", "set", "demo", "zed@nowhere.example", "--official", "on"), "not subscribed"),
    (("audit", "nolist"), "no list called"),
])
def test_moderation_commands_explain_bad_input(server: Running, config_path: Path,
                                               args: tuple[str, ...], message: str) -> None:
    result = cli(config_path, *args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_rate_limit_holds_the_excess_with_a_reason(server: Running, sink: SmtpSink,
                                                   store: Store, config_path: Path) -> None:
    assert cli(config_path, "lists", "set", "demo", "max_posts_per_hour", "2").exit_code == 0
    for n in range(3):
        server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, f"Burst {n}"))
    server.drain()
    assert len(delivered_to(sink, "Burst")) == 6
    queue = cli(config_path, "queue", "list", "demo").output
    assert "Burst 2" in queue and "in the last hour (the limit is 2)" in queue
    # Other senders are not affected.
    server.send(MEMBERS[1], POST, mail(MEMBERS[1], POST, "Calm post"))
    server.drain()
    assert len(delivered_to(sink, "Calm post")) == 3


def test_vendor_staff_are_named_and_marked_on_delivery(server: Running, sink: SmtpSink,
                                                       config_path: Path) -> None:
    vendor = "jane@acme-software.example"
    assert cli(config_path, "members", "add", "demo", vendor, "--name", "Jane Doe").exit_code == 0
    changed = cli(config_path, "members", "set", "demo", vendor, "--vendor", "Acme Ltd",
                  "--moderation", "accept")
    assert changed.exit_code == 0 and "vendor staff (Acme Ltd)" in changed.output
    server.send(vendor, POST, mail(vendor, POST, "Release notes",
                                      headers={"X-Commonroom-Role": "member"}))
    server.drain()
    got = [parse(m.data) for m in sink.messages if m.rcpt_tos == (MEMBERS[0],)]
    assert len(got) == 1
    assert got[0].get_all("X-Commonroom-Role") == ['vendor; org="Acme Ltd"']
    assert "Jane Doe (Acme Ltd, vendor)" in str(got[0]["From"])
    assert cli(config_path, "members", "set", "demo", vendor, "--official", "on").exit_code == 0
    sink.messages.clear()
    server.send(vendor, POST, mail(vendor, POST, "Official notice"))
    server.drain()
    got = [parse(m.data) for m in sink.messages if m.rcpt_tos == (MEMBERS[0],)]
    assert got[0]["X-Commonroom-Role"] == 'vendor; org="Acme Ltd"; official'


def test_a_chatty_reply_changes_nothing_and_is_answered_with_the_commands(
        server: Running, sink: SmtpSink, store: Store) -> None:
    """Issue 7.6: "OK, …" is not "approve"."""
    held_id, address = hold_one(server, sink)
    reply(server, MOD, address, "OK, but ask them to shorten it next time")
    assert delivered_to(sink, "Can I ask about CRMs?") == []
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None and held.resolved_at is None
    answer = body(wait_until(lambda: to(sink, MOD), what="the answer to the moderator")[0])
    assert "nothing was done" in answer
    assert "approve always" in answer and "reject REASON" in answer


def test_shunted_messages_are_listed_and_handled_again(
        server: Running, sink: SmtpSink, store: Store, config_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 7.12: a message whose handling raised is kept, listed with --shunted (per list and
    across lists) and handled again by 'queue retry ID', token and all."""
    held_id, address = hold_one(server, sink)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the moderation service fell over")

    monkeypatch.setattr(moderation, "act_by_reply", broken)
    reply(server, MOD, address, "approve")
    assert delivered_to(sink, "Can I ask about CRMs?") == []
    assert "Can I ask about CRMs?" in cli(config_path, "queue", "list", "demo").output
    for args in (("queue", "list", "demo", "--shunted"), ("queue", "list", "--shunted")):
        listed = cli(config_path, *args)
        assert listed.exit_code == 0, listed.output
        [line] = listed.output.splitlines()
        shunted_id, lists, sender, subject, error = line.split("\t")[:5]
        assert (lists, sender, subject) == ("demo", MOD, "Re: held post")
        assert "RuntimeError: the moderation service fell over" in error
    other = cli(config_path, "queue", "list", "nolist", "--shunted")
    assert other.exit_code != 0 and "no list called" in other.output
    assert cli(config_path, "queue", "list").exit_code != 0

    failed = cli(config_path, "queue", "retry", shunted_id)
    assert failed.exit_code == 1 and "failed again" in failed.output

    monkeypatch.undo()
    retried = cli(config_path, "queue", "retry", shunted_id)
    assert retried.exit_code == 0, retried.output
    server.app.worker.wake()  # type: ignore[union-attr]
    wait_until(lambda: len(delivered_to(sink, "Can I ask about CRMs?")) == 3, what="the approval")
    with store.session() as s:
        held = s.get(Held, held_id)
        assert held is not None and held.resolved_by == MOD
    assert cli(config_path, "queue", "list", "--shunted").output.strip() == "nothing is shunted"
    again = cli(config_path, "queue", "retry", shunted_id)
    assert again.exit_code == 1 and "no shunted message" in again.output
    assert ("cli", "shunt-retried") in audit_actions(store)


def test_at_most_one_notice_a_day_to_a_posts_sender(server: Running, sink: SmtpSink,
                                                    config_path: Path) -> None:
    """Issue 7.11: forged posts must not make the list a backscatter source."""
    for n in range(3):
        server.send(OUTSIDER, POST, mail(OUTSIDER, POST, f"Held question {n}"))
    server.drain()
    assert len(to(sink, OUTSIDER)) == 1, "one held notice, not three"
    assert len([m for m in to(sink, MOD) if "Held question" in str(m["Subject"])]) == 3
    assert cli(config_path, "lists", "set", "demo", "nonmember_action", "reject").exit_code == 0
    other = "eve@elsewhere.example"
    for n in range(2):
        server.send(other, POST, mail(other, POST, f"Rejected question {n}"))
    server.drain()
    assert len(to(sink, other)) == 1, "one rejection notice, not two"


def test_no_notice_to_a_sender_whose_post_failed_dmarc(server: Running, sink: SmtpSink) -> None:
    results = "mx.lists.example.org; dmarc=fail (p=reject) header.from=elsewhere.example"
    server.send(OUTSIDER, POST, mail(OUTSIDER, POST, "Forged question",
                                     headers={"Authentication-Results": results}))
    server.drain()
    assert [m for m in to(sink, MOD) if "Forged question" in str(m["Subject"])]
    assert to(sink, OUTSIDER) == []


def test_no_rejection_notice_to_a_sender_banned_meanwhile(server: Running, sink: SmtpSink,
                                                         config_path: Path) -> None:
    held_id, _ = hold_one(server, sink)
    assert cli(config_path, "bans", "add", OUTSIDER).exit_code == 0
    assert cli(config_path, "queue", "reject", str(held_id), "--reason", "spam").exit_code == 0
    server.app.worker.wake()  # type: ignore[union-attr]
    server.drain()
    assert to(sink, OUTSIDER) == []
