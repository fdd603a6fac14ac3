"""Posts written in Discord, into the list (``listserv.discord_inbound``): the mail a message
becomes (``compose``: headers no name can break, threading headers) and ``submit`` through the
posting pipeline on both backends (linked or not, bridged or not, held, replayed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from listserv import discord_inbound as di
from listserv import moderation, posting
from listserv.config import Config
from listserv.lists import find
from listserv.message import parse
from listserv.models import (
    Action,
    Address,
    DiscordLink,
    DiscordPost,
    DiscordRelay,
    DiscordThread,
    Held,
    MailingList,
    Message,
    Outbox,
    Person,
)
from listserv.rules import POLICY_RULE
from listserv.store import Store
from tests.harness import mail, make_list
from tests.harness import parse as parse_mail

CHANNEL = "333333333333333333"
CFG = replace(Config(), bridges={"demo": CHANNEL})
DOMAIN = CFG.server.domain
USER = "111111111111111111"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _dm(content: str = "Hello from Discord", *, message_id: str = "900000000000000001",
        thread_id: str = "800000000000000001", thread_name: str = "A Discord thread",
        user: str = USER, channel: str = CHANNEL, attachments: tuple[str, ...] = ()
        ) -> di.DiscordMessage:
    return di.DiscordMessage(user_id=user, message_id=message_id, thread_id=thread_id,
                             channel_id=channel, thread_name=thread_name, content=content,
                             attachments=attachments, author_name="jane_d")


def _compose(name: str, subject: str = "Subject", **kw: object) -> bytes:
    place = di.Placement(subject, **kw)  # type: ignore[arg-type]
    return di.compose(_dm(), name=name, address="jane@example.com",
                      post_address=f"demo@{DOMAIN}", domain=DOMAIN, placement=place, now=NOW)


# --- compose ----------------------------------------------------------------------------------

HOSTILE = [
    "Jane\r\nBcc: victim@example.net",
    "Jane\nX-Injected: yes",
    "=?utf-8?q?Evil=0D=0ABcc=3A_victim=40example.net?=",
    "=?utf-8?b?RXZpbA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5uZXQ=?= <evil@example.net>",
    "Jane\x00\x1b[31m Doe\u2028Bcc: victim@example.net",
    'Jane "Q" Doe, <Esq.>',
    "Zoë =?x? Ünïcödé",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_or_subject_cannot_inject_headers(name: str) -> None:
    raw = _compose(name, subject=name)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = [line.split(":", 1)[0] for line in head.split("\r\n") if not line[:1].isspace()]
    assert sorted(fields) == sorted(["From", "To", "Subject", "Date", "Message-ID",
                                     "X-Commonroom-Discord", "MIME-Version", "Content-Type",
                                     "Content-Transfer-Encoding"])
    parsed = parse(raw, domain=DOMAIN)
    assert parsed.from_address == "jane@example.com"
    assert "\n" not in parsed.from_name and "\r" not in parsed.from_name
    assert "Bcc" not in [k for k, _ in parsed.headers]
    # What a reader's client shows is the text as typed (cleaned), not a decoded trick.
    assert parsed.from_name.startswith(name[:4].replace("\n", " ").replace("\r", ""))


def test_threading_headers_and_body() -> None:
    raw = di.compose(_dm("**bold** ünï\nsecond line", attachments=("https://cdn.example/a.png",)),
                     name="Jane Doe", address="jane@example.com", post_address=f"demo@{DOMAIN}",
                     domain=DOMAIN, now=NOW,
                     placement=di.Placement("Re: Plans", "p@x", ("root@x", "p@x")))
    msg = parse_mail(raw)
    assert msg["In-Reply-To"] == "<p@x>"
    assert msg["References"] == "<root@x> <p@x>"
    assert msg["Subject"] == "Re: Plans"
    assert msg["Message-ID"].endswith(f"@{DOMAIN}>")
    assert " ".join(msg["X-Commonroom-Discord"].split()) == (
        f"message=900000000000000001; thread=800000000000000001; user={USER}")
    body = msg.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")  # type: ignore[union-attr]
    assert body == "**bold** ünï\nsecond line\n\nAttachments:\nhttps://cdn.example/a.png\n"
    assert msg.get_content_charset() == "utf-8"


def test_references_keep_the_root_and_the_nearest() -> None:
    chain = [f"{n}@x" for n in range(50)]
    kept = di.trimmed(chain)
    assert len(kept) == di.MAX_REFERENCES
    assert kept[0] == "0@x" and kept[-1] == "49@x" and kept[1] == f"{50 - di.MAX_REFERENCES + 1}@x"


# --- submit -----------------------------------------------------------------------------------

def _link(store: Store, email: str, user: str = USER, name: str = "Jane Doe") -> None:
    with store.session() as s:
        address = s.exec(select(Address).where(Address.email == email)).one()
        person = s.get(Person, address.person_id)
        assert person is not None
        person.display_name = name
        s.add(person)
        s.add(DiscordLink(discord_user_id=user, person_id=address.person_id))


def _submit(store: Store, dm: di.DiscordMessage, cfg: Config = CFG) -> di.Outcome:
    with store.session() as s:
        return di.submit(s, cfg, dm)


def _messages(store: Store) -> list[Message]:
    with store.read_session() as s:
        rows = list(s.exec(select(Message).order_by(col(Message.id))).all())
        s.expunge_all()  # read after the session ends
        return rows


def _email_post(store: Store, sender: str, subject: str, message_id: str,
                refs: str = "") -> posting.PostResult:
    raw = mail(sender, f"demo@{DOMAIN}", subject, message_id=message_id,
               headers={"References": refs, "In-Reply-To": refs.split()[-1]} if refs else None)
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        return posting.post(s, CFG, ml, raw, parse(raw, domain=DOMAIN), envelope_from=sender)


def test_new_discord_thread_becomes_a_new_list_thread(store: Store) -> None:
    make_list(store, members=("jane@example.com", "bob@example.com"))
    _link(store, "jane@example.com")
    out = _submit(store, _dm(thread_name="Release plans"))
    assert out.result is di.Result.ACCEPTED and not out.remove and out.list_name == "demo"
    [msg] = _messages(store)
    assert msg.status == "accepted" and msg.subject == "Release plans"
    assert msg.from_address == "jane@example.com" and msg.from_name == "Jane Doe"
    with store.read_session() as s:
        tie = s.exec(select(DiscordThread)).one()
        assert (tie.thread_id, tie.discord_thread_id, tie.channel_id) == (
            msg.thread_id, "800000000000000001", CHANNEL)
        assert s.get(DiscordPost, "900000000000000001") is not None
        assert {o.recipient for o in s.exec(select(Outbox)).all()} == {"jane@example.com",
                                                                        "bob@example.com"}
        assert s.exec(select(DiscordRelay)).all() == []  # already in Discord: no echo


def test_reply_in_a_tied_thread_joins_the_email_thread(store: Store) -> None:
    make_list(store, members=("jane@example.com", "bob@example.com"))
    _link(store, "jane@example.com")
    root = _email_post(store, "bob@example.com", "Plans", "root@example.com")
    _email_post(store, "bob@example.com", "Re: Plans", "second@example.com", "<root@example.com>")
    with store.session() as s:
        thread_id = s.get(Message, root.message_pk).thread_id  # type: ignore[union-attr]
        assert thread_id is not None
        s.add(DiscordThread(thread_id=thread_id, discord_thread_id="800000000000000001",
                            channel_id=CHANNEL))
    out = _submit(store, _dm("I agree"))
    assert out.result is di.Result.ACCEPTED
    mine = _messages(store)[-1]
    assert mine.thread_id == thread_id and mine.subject == "Re: Plans"
    parsed = parse(mine.raw, domain=DOMAIN)
    assert parsed.in_reply_to == "second@example.com"
    assert parsed.references == ("root@example.com", "second@example.com")


def test_unlinked_user_is_told_how_to_link_and_nothing_is_stored(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    out = _submit(store, _dm())
    assert out.result is di.Result.NOT_LINKED and "/link email:" in out.text
    assert _messages(store) == []


def test_a_channel_that_is_not_bridged_is_ignored(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    _link(store, "jane@example.com")
    assert _submit(store, _dm(channel="444444444444444444")).result is di.Result.NOT_BRIDGED
    assert _submit(store, _dm(), replace(CFG, bridges={"gone": CHANNEL})).result \
        is di.Result.NOT_BRIDGED  # bridged to a list that does not exist (any more)
    assert _messages(store) == []


def test_an_empty_message_sends_nothing(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    _link(store, "jane@example.com")
    assert _submit(store, _dm("  ")).result is di.Result.EMPTY
    assert _messages(store) == []


def test_a_replayed_event_is_handled_once(store: Store) -> None:
    make_list(store, members=("jane@example.com",))
    _link(store, "jane@example.com")
    assert _submit(store, _dm()).result is di.Result.ACCEPTED
    assert _submit(store, _dm()).result is di.Result.DUPLICATE
    assert len(_messages(store)) == 1


def test_emergency_holds_and_approval_ties_the_thread_later(store: Store) -> None:
    make_list(store, members=("jane@example.com",), emergency=True)
    _link(store, "jane@example.com")
    out = _submit(store, _dm(thread_name="Incident"))
    assert out.result is di.Result.HELD and out.remove and out.held_id is not None
    assert "moderators will look at it" in out.text
    with store.session() as s:
        assert s.exec(select(DiscordThread)).all() == []  # not out yet: no list thread
        ml = s.exec(select(MailingList)).one()
        ml.emergency = False
        s.add(ml)
        assert moderation.act(s, CFG, out.held_id, Action.ACCEPT, actor="test").ok
        # Approved: relayed back into Discord (the bot removed the original).
        assert [r.message_pk for r in s.exec(select(DiscordRelay)).all()] == [out.message_pk]
    second = _submit(store, _dm("follow-up", message_id="900000000000000002"))
    assert second.result is di.Result.ACCEPTED
    first, follow = _messages(store)
    assert follow.thread_id == first.thread_id
    assert parse(follow.raw, domain=DOMAIN).in_reply_to == first.message_id


def test_a_linked_person_who_is_not_a_member_meets_the_non_member_rule(store: Store) -> None:
    make_list(store, members=("bob@example.com",))
    make_list(store, "other", members=("jane@example.com",))
    _link(store, "jane@example.com")
    out = _submit(store, _dm())
    assert out.result is di.Result.HELD
    with store.read_session() as s:
        held = s.exec(select(Held)).one()
        assert "member" in held.reason
    assert "member" in out.text


def test_a_rejected_post_is_removed_and_the_author_told_why(store: Store) -> None:
    make_list(store, members=("bob@example.com",), nonmember_action="reject")
    make_list(store, "other", members=("jane@example.com",))
    _link(store, "jane@example.com")
    out = _submit(store, _dm())
    assert out.result is di.Result.REJECTED and out.remove
    assert "not sent to the demo list" in out.text


def test_a_vendors_new_view_is_held_by_the_participation_policy(store: Store) -> None:
    make_list(store, members=("jane@acme.example", "bob@example.com"))
    _link(store, "jane@acme.example")
    with store.session() as s:
        person = s.exec(select(Person).join(Address, col(Address.person_id) == col(Person.id))
                        .where(Address.email == "jane@acme.example")).one()
        person.kind, person.organisation = "vendor", "Acme Ltd"
        s.add(person)
    view = " ".join(["Our product is the best choice for every council, and here is why."] * 10)
    out = _submit(store, _dm(view))
    assert out.result is di.Result.HELD and out.remove
    with store.read_session() as s:
        held = s.exec(select(Held)).one()
        assert held.rule == POLICY_RULE, held
    pointer = _submit(store, _dm("Release notes: https://acme.example/notes",
                                 message_id="900000000000000002"))
    assert pointer.result is di.Result.ACCEPTED  # a short pointer is fine


def test_a_reply_names_as_root_the_threads_first_post_to_arrive(store: Store) -> None:
    """Ids need not follow arrival (taken ahead by two processes: listserv/ids_ahead.py); here
    the reply was stored first, with the lower id, but arrived after the opening post."""
    make_list(store, members=("jane@example.com", "bob@example.com"))
    _link(store, "jane@example.com")
    reply = _email_post(store, "bob@example.com", "Re: Plans", "second@example.com",
                        "<root@example.com>")
    root = _email_post(store, "bob@example.com", "Plans", "root@example.com")
    assert reply.message_pk < root.message_pk
    with store.session() as s:
        first, second = s.get(Message, root.message_pk), s.get(Message, reply.message_pk)
        assert first is not None and second is not None and first.thread_id is not None
        first.received_at = second.received_at - timedelta(minutes=1)
        s.add(first)
        s.add(DiscordThread(thread_id=first.thread_id, discord_thread_id="800000000000000001",
                            channel_id=CHANNEL))
    assert _submit(store, _dm("I agree")).result is di.Result.ACCEPTED
    parsed = parse(_messages(store)[-1].raw, domain=DOMAIN)
    assert parsed.references[0] == "root@example.com"
