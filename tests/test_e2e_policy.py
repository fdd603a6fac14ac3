"""The participation policy end to end: the table of real-looking posts in tests/data/policy,
each sent through SMTP by its author (vendor staff, or a council officer posting officially),
is delivered or held as the table says, with the evidence stored and shown to moderators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlmodel import select

from listserv import config as config_mod
from listserv.models import MailingList, Message
from listserv.policy import HOLD_REASON, Case
from listserv.store import Store
from tests.harness import DOMAIN, Running, cli, make_list, parse, running
from tests.smtpsink import SmtpSink
from tests.test_policy import DATA, EXPECTED

LIST = "govtools"
POST = f"{LIST}@{DOMAIN}"
MOD = "mod@examplecouncil.gov.uk"
READER = "reader@district.gov.uk"
SOURCES = "gov.uk/government/news www.examplecouncil.gov.uk/news"
FIRST = "press_release_forward.eml"  # posted first: quoted_press_release.eml quotes it back


def author(name: str) -> str:
    raw = (DATA / name).read_bytes()
    return parseaddr(parse(raw)["From"])[1].lower()


@pytest.fixture
def server(store: Store, config_path: Path) -> Iterator[Running]:
    make_list(store, LIST, description="Local government tools", moderators=(MOD,),
              members=(READER,), max_posts_per_hour=0)
    assert cli(config_path, "lists", "set", LIST, "public_sources", SOURCES).exit_code == 0
    for who in sorted({author(n) for n in EXPECTED}):
        assert cli(config_path, "members", "add", LIST, who).exit_code == 0
        flag = (("--vendor", "Acme Software") if who.endswith("@acme-software.example")
                else ("--official", "on"))
        assert cli(config_path, "members", "set", LIST, who, *flag).exit_code == 0
    with running(config_mod.load(config_path, env={}), store) as srv:
        yield srv


def test_the_policy_table_end_to_end(server: Running, sink: SmtpSink, store: Store) -> None:
    order = [FIRST, *sorted(n for n in EXPECTED if n != FIRST)]
    for name in order:
        raw = (DATA / name).read_bytes()
        server.send(author(name), POST, raw)
    server.drain()

    with store.session() as s:
        stored = {m.message_id: m for m in s.exec(select(Message).where(
            Message.envelope_to == POST))}
    assert len(stored) == len(EXPECTED)
    got: dict[str, Case] = {}
    for name in order:
        message_id = parse((DATA / name).read_bytes())["Message-ID"].strip("<>")
        msg = stored[message_id]
        evidence = json.loads(msg.policy)
        got[name] = Case(evidence["case"])
        held = got[name] is Case.NEW_CONTENT
        assert msg.status == ("held" if held else "accepted"), (name, msg.reason)
        if held:
            assert msg.reason == HOLD_REASON
    assert got == EXPECTED

    # Readers get exactly the accepted posts; the moderator is shown the evidence of each hold.
    accepted = sum(1 for c in EXPECTED.values() if c is not Case.NEW_CONTENT)
    to_reader = [m for m in sink.messages if m.rcpt_tos == (READER,)]
    assert len(to_reader) == accepted
    notices = [parse(m.data) for m in sink.messages if m.rcpt_tos == (MOD,)
               and "held post" in str(parse(m.data)["Subject"])]
    assert len(notices) == len(EXPECTED) - accepted
    text = notices[0].get_payload(0).get_payload(decode=True).decode()
    assert "Participation policy: new-content" in text and "own words:" in text


def test_the_author_is_told_kindly_what_happens_next(server: Running, sink: SmtpSink) -> None:
    name = "vendor_link_plus_opinion.eml"
    server.send(author(name), POST, (DATA / name).read_bytes())
    server.drain()
    told = [parse(m.data) for m in sink.messages if m.rcpt_tos == (author(name),)]
    assert len(told) == 1
    body = told[0].get_payload(decode=True).decode()
    assert HOLD_REASON in body and "nothing is wrong with your message" in body


def test_members_are_not_subject_to_the_policy_unless_the_list_says_so(
        server: Running, sink: SmtpSink, config_path: Path, store: Store) -> None:
    name = "vendor_link_plus_opinion.eml"
    raw = (DATA / name).read_bytes().replace(author(name).encode(), READER.encode())
    server.send(READER, POST, raw.replace(b"Message-ID: <", b"Message-ID: <m1-"))
    assert cli(config_path, "lists", "set", LIST, "policy_scope", "everyone").exit_code == 0
    server.send(READER, POST, raw.replace(b"Message-ID: <", b"Message-ID: <m2-"))
    assert cli(config_path, "lists", "set", LIST, "policy_scope", "off").exit_code == 0
    vendor = author(name)
    server.send(vendor, POST, (DATA / name).read_bytes().replace(b"Message-ID: <", b"Message-ID: <m3-"))
    server.drain()
    with store.session() as s:
        statuses = [m.status for m in s.exec(select(Message).where(
            Message.envelope_to == POST).order_by(Message.id))]
    assert statuses == ["accepted", "held", "accepted"]


def test_policy_explain_prints_the_decision_without_posting(server: Running, config_path: Path,
                                                            store: Store) -> None:
    held = cli(config_path, "policy", "explain", str(DATA / "public_link_plus_view.eml"),
               "--list", LIST)
    assert held.exit_code == 0, held.output
    assert "new-content" in held.output and "Outcome: held" in held.output
    assert "(public source)" in held.output
    ok = cli(config_path, "policy", "explain", str(DATA / "bare_vendor_link.eml"), "--list", LIST)
    assert "pointer" in ok.output and "Outcome: accepted" in ok.output
    with store.session() as s:
        assert s.exec(select(Message)).all() == []
    missing = cli(config_path, "policy", "explain", "/nonexistent.eml", "--list", LIST)
    assert missing.exit_code == 2 and "does not exist" in missing.output


@pytest.mark.parametrize("headers,rule", [
    (b"Auto-Submitted: auto-replied\r\n", "auto-generated"),
    (b"List-Id: <govtools.lists.example.org>\r\n", "loop"),
    (b"", "banned"),
])
def test_the_policy_is_not_consulted_when_an_earlier_rule_decides(
        server: Running, sink: SmtpSink, store: Store, config_path: Path, headers: bytes,
        rule: str) -> None:
    # Issue 7.5: loops, automatic mail and bans are decided before the policy reads a body.
    name = "vendor_link_plus_opinion.eml"
    if rule == "banned":
        assert cli(config_path, "bans", "add", author(name), "--list", LIST).exit_code == 0
    server.send(author(name), POST, headers + (DATA / name).read_bytes())
    server.drain()
    with store.session() as s:
        msg = s.exec(select(Message).where(Message.envelope_to == POST)).one()
    assert msg.status == "discarded" and msg.reason.startswith(
        {"auto-generated": "automatic mail", "loop": "mail loop", "banned": author(name)}[rule])
    assert msg.policy == "", "no policy evidence: the policy never ran"
    assert sink.messages == []


def test_public_texts_are_kept_when_stored_not_parsed_again(server: Running, store: Store,
                                                             sink: SmtpSink) -> None:
    # Issue 7.5: the texts later posts are compared with are extracted once, when stored.
    server.send(author(FIRST), POST, (DATA / FIRST).read_bytes())
    server.drain()
    with store.session() as s:
        first = s.exec(select(Message).where(Message.envelope_to == POST)).one()
        assert first.status == "accepted" and first.public_texts is not None
        kept = json.loads(first.public_texts)
        assert any(t.startswith("The government today published new guidance") for t in kept)
        first.raw = b"Subject: gone\r\n\r\nThe raw bytes are no longer read.\r\n"
        s.add(first)
    name = "quoted_press_release.eml"
    server.send(author(name), POST, (DATA / name).read_bytes())
    server.drain()
    with store.session() as s:
        quoting = s.exec(select(Message).where(Message.envelope_to == POST)
                         .order_by(Message.id.desc())).first()  # type: ignore[union-attr]
    assert quoting is not None and quoting.status == "accepted", quoting and quoting.reason
    assert json.loads(quoting.policy)["quoted_public"] is True


def test_public_texts_of_posts_stored_before_they_were_kept_are_read_from_the_raw_bytes(
        server: Running, store: Store) -> None:
    from listserv import participation

    server.send(author(FIRST), POST, (DATA / FIRST).read_bytes())
    server.drain()
    with store.session() as s:
        first = s.exec(select(Message).where(Message.envelope_to == POST)).one()
        kept = json.loads(first.public_texts or "null")
        first.public_texts = None  # as rows stored before migration 0004
        s.add(first)
    with store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == LIST)).one()
        assert participation.public_texts(s, ml) == kept
