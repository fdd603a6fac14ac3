"""Bounces through real SMTP on loopback: samples to VERP addresses score the right member,
policy refusals are not counted, the threshold disables, reminders, removal, re-enable by
mail, complaints unsubscribe, auto-replies are dropped (tests/data/bounces/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from digests.jobs import bounce_sweep
from listserv import config as config_mod
from listserv.addresses import verp_sender
from listserv.lists import find
from listserv.models import AuditEntry, Bounce, Subscription
from listserv.store import Store
from listserv.subscriptions import find_subscription
from tests.harness import DOMAIN, Running, cli, mail, make_list, parse, running, write_config
from tests.smtpsink import SmtpSink

DATA = Path(__file__).parent / "data" / "bounces"
MOD = "mod@example.net"
ALICE, CAROL, DAVE, ERIN, FRANK, GINA = ("alice@example.org", "carol@example.com",
                                         "dave@contoso.example", "erin@gmail.example",
                                         "frank@hotmail.example", "gina@weird.example")


@pytest.fixture
def config(tmp_path: Path, db_url: str, sink: SmtpSink) -> Path:
    return write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}")


@pytest.fixture
def server(store: Store, config: Path) -> Iterator[Running]:
    make_list(store, "pub", moderators=(MOD,), members=(ALICE, CAROL, DAVE, ERIN, FRANK, GINA),
              nonmember_action="reject")
    with running(config_mod.load(config, env={}), store) as srv:
        yield srv


def bounce(server: Running, sample: str, member: str | None) -> None:
    to = verp_sender("pub", DOMAIN, member) if member else f"pub-bounces@{DOMAIN}"
    server.send("", to, (DATA / sample).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def sub(store: Store, email: str) -> Subscription | None:
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None and ml.id is not None
        return find_subscription(s, ml.id, email)


def rewind_a_day(store: Store, email: str) -> None:
    """The day rule counts one bounce a day: make the last one yesterday's."""
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None and ml.id is not None
        row = find_subscription(s, ml.id, email)
        assert row is not None and row.last_bounce_at is not None
        row.last_bounce_at -= timedelta(days=1)
        s.add(row)


def mail_to(sink: SmtpSink, rcpt: str) -> list[str]:
    return [str(parse(m.data)["Subject"]) for m in sink.messages if m.rcpt_tos == (rcpt,)]


@pytest.mark.parametrize(("sample", "member", "score", "status"), [
    ("postfix_5.1.1.eml", ALICE, 1.0, "5.1.1"),
    ("exim_plain.eml", CAROL, 1.0, "5.1.1"),
    ("exchange_5.1.10.eml", DAVE, 1.0, "5.1.10"),
    ("gmail_5.1.1.eml", ERIN, 1.0, "5.1.1"),
    ("rfc3464_simple.eml", GINA, 0.5, "4.0.0"),  # names alice, but gina's copy came back
    ("unreadable.eml", GINA, 1.0, "5.0.0"),
])
def test_sample_scores_the_verp_member(server: Running, store: Store, sample: str, member: str,
                                       score: float, status: str) -> None:
    bounce(server, sample, member)
    row = sub(store, member)
    assert row is not None and row.bounce_score == score and row.last_bounce_at is not None
    with store.session() as s:
        [b] = s.exec(select(Bounce)).all()
    assert (b.address, b.status, b.counted) == (member, status, score)
    others = [e for e in (ALICE, CAROL, DAVE, ERIN, GINA) if e != member]
    assert all(getattr(sub(store, e), "bounce_score", None) == 0.0 for e in others)


def test_policy_refusal_not_counted_but_owners_told(server: Running, store: Store,
                                                    sink: SmtpSink) -> None:
    bounce(server, "gmail_5.7.1.eml", ERIN)
    bounce(server, "postfix_5.7.1_policy.eml", ALICE)
    server.drain()
    assert sub(store, ERIN).bounce_score == 0.0  # type: ignore[union-attr]
    assert sub(store, ALICE).bounce_score == 0.0  # type: ignore[union-attr]
    told = mail_to(sink, MOD)
    assert told == ["pub: mail refused by policy (5.7.26)"]  # once a day, not per copy


@pytest.mark.parametrize("sample", ["out_of_office.eml", "challenge_response.eml",
                                    "postfix_delayed.eml"])
def test_autoreplies_and_warnings_dropped(server: Running, store: Store, sample: str) -> None:
    bounce(server, sample, ALICE)
    with store.session() as s:
        assert s.exec(select(Bounce)).all() == []
    assert sub(store, ALICE).bounce_score == 0.0  # type: ignore[union-attr]


def test_threshold_disables_then_reminders_then_removal(server: Running, store: Store,
                                                        sink: SmtpSink, config: Path) -> None:
    assert cli(config, "lists", "set", "pub", "bounce_score_threshold", "2").exit_code == 0
    bounce(server, "postfix_5.1.1.eml", ALICE)
    bounce(server, "postfix_5.1.1.eml", ALICE)  # same day: not counted again
    assert sub(store, ALICE).delivery_disabled_at is None  # type: ignore[union-attr]
    rewind_a_day(store, ALICE)
    bounce(server, "postfix_5.1.1.eml", ALICE)
    row = sub(store, ALICE)
    assert row is not None and row.delivery_disabled_at is not None and row.bounce_score == 2.0
    assert row.delivery_mode == "each"  # still a member, mode kept
    server.drain()
    [notice] = [parse(m.data) for m in sink.messages if m.rcpt_tos == (ALICE,)]
    assert notice["Subject"] == "pub: your delivery is disabled (bounces)"
    text = notice.get_payload(decode=True).decode()
    assert f"pub-request@{DOMAIN}" in text and "enable" in text
    [told] = [parse(m.data) for m in sink.messages if m.rcpt_tos == (MOD,)]
    assert told["Subject"] == "pub: delivery to alice@example.org disabled (bounces)"
    told_text = told.get_payload(decode=True).decode()
    assert "bounce score 2" in told_text and "5.1.1" in told_text
    assert "commonroom members enable pub alice@example.org" in told_text

    # A post goes to everyone but the disabled member.
    before = len(sink.messages)
    server.send(CAROL, f"pub@{DOMAIN}", mail(CAROL, f"pub@{DOMAIN}", "news"))
    server.drain()
    got = {m.rcpt_tos[0] for m in sink.messages[before:]}
    assert CAROL in got and DAVE in got and ALICE not in got

    # Reminders every 7 days (the default), 3 of them (the default), then removal.
    disabled: datetime = row.delivery_disabled_at
    assert bounce_sweep(store, server.cfg, disabled + timedelta(days=6)) == 0
    for n, day in enumerate((7, 14, 21), start=1):
        assert bounce_sweep(store, server.cfg, disabled + timedelta(days=day, minutes=n)) == 1
    assert bounce_sweep(store, server.cfg, disabled + timedelta(days=27)) == 0
    assert sub(store, ALICE) is not None
    assert bounce_sweep(store, server.cfg, disabled + timedelta(days=29)) == 1
    assert sub(store, ALICE) is None
    server.drain()
    # Each reminder once; their order at the smarthost is not the queue's (two connections,
    # each with a copy taken ahead to chain with the one it sends).
    assert sorted(s for s in mail_to(sink, ALICE) if "reminder" in s) == [
        f"pub: your delivery is still disabled (reminder {n})" for n in (1, 2, 3)]
    assert "pub: alice@example.org unsubscribed (bounces)" in mail_to(sink, MOD)


def test_reenable_by_mail_and_cli_shows_it(server: Running, store: Store, sink: SmtpSink,
                                           config: Path) -> None:
    assert cli(config, "lists", "set", "pub", "bounce_score_threshold", "1").exit_code == 0
    bounce(server, "exim_plain.eml", CAROL)
    output = cli(config, "members", "list", "pub", "--json").output
    lines = [json.loads(x) for x in output.splitlines()]
    carol = next(x for x in lines if x["email"] == CAROL)
    assert carol["delivery_disabled"] is True and carol["bounce_score"] == 1.0
    assert carol["last_bounce"] is not None
    out = cli(config, "bounces", "pub").output
    assert CAROL in out and "5.1.1" in out and "mailbox unavailable" in out

    server.send(CAROL, f"pub-request@{DOMAIN}", mail(CAROL, f"pub-request@{DOMAIN}", "enable"))
    row = sub(store, CAROL)
    assert row is not None and row.delivery_disabled_at is None and row.bounce_score == 0.0
    with store.session() as s:
        actions = [a.action for a in s.exec(select(AuditEntry).where(AuditEntry.target == CAROL))]
    assert "delivery-disabled" in actions and "delivery-enabled" in actions


def test_members_enable_cli(server: Running, store: Store, config: Path) -> None:
    assert cli(config, "lists", "set", "pub", "bounce_score_threshold", "1").exit_code == 0
    bounce(server, "gmail_5.1.1.eml", ERIN)
    assert sub(store, ERIN).delivery_disabled_at is not None  # type: ignore[union-attr]
    result = cli(config, "members", "enable", "pub", ERIN)
    assert result.exit_code == 0 and "on again" in result.output
    assert sub(store, ERIN).delivery_disabled_at is None  # type: ignore[union-attr]
    result = cli(config, "members", "enable", "pub", "nobody@example.org")
    assert result.exit_code != 0 and "not a member" in result.output


@pytest.mark.parametrize("to", [f"pub-bounces@{DOMAIN}", f"pub-owner@{DOMAIN}"])
def test_arf_complaint_unsubscribes(server: Running, store: Store, sink: SmtpSink,
                                    to: str) -> None:
    server.send("", to, (DATA / "arf_abuse.eml").read_bytes().replace(b"\n", b"\r\n"))
    assert sub(store, FRANK) is None
    with store.session() as s:
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "unsubscribed",
                                                  AuditEntry.target == FRANK)).all()
    assert entry.actor == "bounces" and "complaint" in entry.detail
    server.drain()
    assert mail_to(sink, MOD) == []  # not forwarded to the owners as ordinary mail



def test_probe_bounce_disables_not_the_ordinary_ones(server: Running, store: Store,
                                                     sink: SmtpSink, config: Path) -> None:
    assert cli(config, "lists", "set", "pub", "bounce_score_threshold", "1").exit_code == 0
    assert cli(config, "lists", "set", "pub", "bounce_probe", "on").exit_code == 0
    bounce(server, "postfix_5.1.1.eml", ALICE)
    server.drain()
    [probe] = [m for m in sink.messages if m.rcpt_tos == (ALICE,)]
    assert probe.mail_from.startswith("pub-bounces+probe-")
    assert parse(probe.data)["Subject"] == "pub: checking that mail reaches you"
    rewind_a_day(store, ALICE)
    bounce(server, "postfix_5.1.1.eml", ALICE)  # an ordinary bounce: no second probe
    server.drain()
    assert len([m for m in sink.messages if m.rcpt_tos == (ALICE,)]) == 1
    assert sub(store, ALICE).delivery_disabled_at is None  # type: ignore[union-attr]

    server.send("", probe.mail_from, (DATA / "postfix_5.1.1.eml").read_bytes().replace(
        b"\n", b"\r\n"))
    row = sub(store, ALICE)
    assert row is not None and row.delivery_disabled_at is not None and row.probe_token == ""
    with store.session() as s:
        assert [b.source for b in s.exec(select(Bounce).where(Bounce.source == "probe"))] == [
            "probe"]
    # The probe address, once answered, counts for nothing.
    server.send("", probe.mail_from, (DATA / "postfix_5.1.1.eml").read_bytes().replace(
        b"\n", b"\r\n"))
    with store.session() as s:
        assert len(s.exec(select(Bounce).where(Bounce.source == "probe")).all()) == 1

    # A probe that got through (no bounce of it for bounce_info_stale_days) is forgotten: the
    # next run of bounces to the threshold sends a new one.
    bounce(server, "exim_plain.eml", CAROL)
    first = sub(store, CAROL)
    assert first is not None and first.probe_token and first.delivery_disabled_at is None
    with store.session() as s:
        ml = find(s, "pub")
        assert ml is not None and ml.id is not None
        row = find_subscription(s, ml.id, CAROL)
        assert row is not None and row.last_bounce_at is not None
        row.last_bounce_at -= timedelta(days=8)
        s.add(row)
    bounce(server, "exim_plain.eml", CAROL)
    second = sub(store, CAROL)
    assert second is not None and second.probe_token not in ("", first.probe_token)


def test_a_copy_the_smarthost_refuses_counts_and_shows_in_bounces(
        server: Running, store: Store, sink: SmtpSink, config: Path) -> None:
    assert cli(config, "lists", "set", "pub", "bounce_score_threshold", "1").exit_code == 0
    sink.rcpt_replies[DAVE] = 550
    server.send(CAROL, f"pub@{DOMAIN}", mail(CAROL, f"pub@{DOMAIN}", "news"))
    server.drain()
    row = sub(store, DAVE)
    assert row is not None and row.bounce_score == 1.0 and row.delivery_disabled_at is not None
    out = cli(config, "bounces", "pub").output
    assert DAVE in out and "5.1.1\tcounted 1\tsmtp\t550 5.1.1 No such user" in out


@pytest.mark.parametrize(("key", "value", "stored"), [
    ("bounce_score_threshold", "1", 1),
    ("bounce_info_stale_days", "14", 14),
    ("bounce_you_are_disabled_warnings", "0", 0),  # none: unsubscribed after one interval
    ("bounce_you_are_disabled_warnings_interval", "3", 3),
    ("bounce_probe", "on", True),
    ("bounce_notify_owner_on_disable", "off", False),
])
def test_lists_set_takes_every_bounce_setting(store: Store, config: Path, key: str, value: str,
                                              stored: object) -> None:
    make_list(store, "pub")
    result = cli(config, "lists", "set", "pub", key, value)
    assert result.exit_code == 0, result.output
    with store.session() as s:
        assert getattr(find(s, "pub"), key) == stored
    assert f"{key} = {stored}" in cli(config, "lists", "show", "pub").output


@pytest.mark.parametrize(("key", "value"), [("bounce_score_threshold", "0"),
                                            ("bounce_info_stale_days", "0"),
                                            ("bounce_you_are_disabled_warnings_interval", "0"),
                                            ("bounce_probe", "maybe")])
def test_lists_set_refuses_a_bounce_setting_that_cannot_work(store: Store, config: Path,
                                                             key: str, value: str) -> None:
    make_list(store, "pub")
    result = cli(config, "lists", "set", "pub", key, value)
    assert result.exit_code != 0 and key in result.output


def test_moderators_not_told_of_a_disable_when_the_list_says_so(
        server: Running, store: Store, sink: SmtpSink, config: Path) -> None:
    for key, value in (("bounce_score_threshold", "1"), ("bounce_notify_owner_on_disable", "no")):
        assert cli(config, "lists", "set", "pub", key, value).exit_code == 0
    bounce(server, "postfix_5.1.1.eml", ALICE)
    assert sub(store, ALICE).delivery_disabled_at is not None  # type: ignore[union-attr]
    server.drain()
    assert mail_to(sink, ALICE) == ["pub: your delivery is disabled (bounces)"]
    assert mail_to(sink, MOD) == []
