"""Discord → email through the wire (issue 8): people's messages in bridged threads are gateway
MESSAGE_CREATE events from the Discord API double; the bot (bot/cogs/bridge.py) posts them to
the list through the running server, whose outbox delivers them to the SMTP sink. What the bot
does back (deleting a held message, writing privately) is read from the double's requests."""

from __future__ import annotations

import email.policy
import logging
from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from listserv.config import load
from listserv.models import Address, DiscordLink, DiscordThread, Message, Person
from listserv.store import Store
from tests.discord_double import DiscordDouble, ThreadedDouble
from tests.harness import (
    DOMAIN,
    Running,
    cli,
    mail,
    make_list,
    running,
    wait_until,
    write_config,
)
from tests.smtpsink import SmtpSink
from tests.test_bot_links import answer_text, discord_cfg

JANE = "555555555555555501"  # a linked member
STRANGER = "555555555555555502"  # not linked
MOD = "555555555555555503"
POST = f"demo@{DOMAIN}"
MEMBERS = ("jane@example.com", "bob@example.com")


def _link(store: Store, email: str, user: str, name: str = "Jane Doe") -> None:
    with store.session() as s:
        address = s.exec(select(Address).where(Address.email == email)).one()
        person = s.get(Person, address.person_id)
        assert person is not None
        person.display_name = name
        s.add(person)
        s.add(DiscordLink(discord_user_id=user, person_id=address.person_id))


def _delivered(sink: SmtpSink, subject_part: str) -> dict[str, EmailMessage]:
    """Recipient -> the mail they got whose Subject contains ``subject_part``."""
    found: dict[str, EmailMessage] = {}
    for m in list(sink.messages):
        msg = message_from_bytes(m.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        if subject_part in str(msg["Subject"]):
            for rcpt in m.rcpt_tos:
                found[rcpt] = msg
    return found


def _posts(store: Store) -> list[Message]:
    with store.read_session() as s:
        rows = list(s.exec(select(Message).where(Message.status != "admin")
                           .order_by(col(Message.id))).all())
        s.expunge_all()
        return rows


class Discord:
    """The double in its thread, as a test uses it."""

    def __init__(self, threaded: ThreadedDouble) -> None:
        self.threaded = threaded
        self.double: DiscordDouble = threaded.double

    def thread(self, name: str, *, announce: bool = True) -> str:
        thread_id = self.double.open_thread(name)
        if announce:
            self.threaded.call(self.double.announce_thread(thread_id))
        return thread_id

    def say(self, thread_id: str, user: str, content: str, **kw: Any) -> str:
        message_id: str = self.threaded.call(self.double.user_message(thread_id, user, content,
                                                                      **kw))
        return message_id

    def call(self, coro: Any) -> Any:
        return self.threaded.call(coro)


def _with_bot(tmp_path: Path, db_url: str, sink: SmtpSink, store: Store,
              test: Callable[[Discord, Running, Callable[..., str]], None],
              existing: str = "") -> None:
    """Run ``test`` against the server with its bot connected to the double (as
    tests/bot_harness.py does, keeping hold of the double's thread to dispatch from).
    ``existing``: a thread there before the bot connects (it learns of it from GUILD_CREATE)."""
    with ThreadedDouble() as threaded:
        double = threaded.double
        if existing:
            double.open_thread(existing)
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          double)

        def ask(name: str, user: str, options: dict[str, object] | None = None,
                roles: tuple[str, ...] = ()) -> str:
            iid = threaded.call(double.interaction(name, user, options, roles=roles))
            return answer_text(threaded.call(double.callback_for(iid)))

        with running(cfg, store) as server:
            threaded.call(double.wait_for("PUT", f"/applications/{double.app_id}/"))
            test(Discord(threaded), server, ask)


def test_a_reply_in_discord_reaches_the_members_in_the_email_thread(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE)

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        server.send("bob@example.com", POST, mail("bob@example.com", POST, "Release plans",
                                                  message_id="plans@example.com"))
        server.drain()
        [thread_id] = discord.double.threads  # opened before the bot connected
        with store.session() as s:  # as the relay (H1) records it when it opens the thread
            [root] = s.exec(select(Message).where(Message.message_id == "plans@example.com"))
            assert root.thread_id is not None
            s.add(DiscordThread(thread_id=root.thread_id, discord_thread_id=thread_id,
                                channel_id=discord.double.channels["demo-list"]))
        discord.say(thread_id, JANE, "Sounds good, **ship it**.\nThursday?",
                    attachments=("https://cdn.example/plan.png",))
        got = wait_until(lambda: (lambda d: d if set(d) == set(MEMBERS) else None)(
            _delivered(sink, "Re: [demo] Release plans")), what="the Discord reply delivered")
        msg = got["bob@example.com"]
        assert msg["From"].addresses[0].addr_spec == "jane@example.com"
        assert msg["From"].addresses[0].display_name == "Jane Doe"
        assert msg["In-Reply-To"] == "<plans@example.com>"
        assert msg["References"] == "<plans@example.com>"
        body = msg.get_body(("plain",))
        assert body is not None
        text = body.get_content().replace("\r\n", "\n")
        assert "Sounds good, **ship it**.\nThursday?" in text
        assert "https://cdn.example/plan.png" in text
        # Accepted: it stays in Discord, and nothing of it is sent back there.
        assert not [r for r in discord.double.requests if r.method == "DELETE"]
        assert discord.double.dms_to(JANE) == []
        # The bot knew the thread from GUILD_CREATE; it did not have to ask.
        assert not [r for r in discord.double.requests if r.method == "GET"
                    and r.path.startswith("/channels/")]

    _with_bot(tmp_path, db_url, sink, store, test, existing="Release plans")


def test_a_new_discord_thread_becomes_a_new_list_thread(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE)

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        thread_id = discord.thread("Who is going to the meetup?")
        discord.say(thread_id, JANE, "I am.")
        got = wait_until(lambda: _delivered(sink, "Who is going to the meetup?").get(
            "bob@example.com"), what="the new thread delivered")
        assert "In-Reply-To" not in got and str(got["Subject"]).startswith("[demo]")
        [post] = _posts(store)
        with store.read_session() as s:
            tie = s.exec(select(DiscordThread)).one()
            assert (tie.thread_id, tie.discord_thread_id) == (post.thread_id, thread_id)
        discord.say(thread_id, JANE, "Bob, are you?")
        second = wait_until(lambda: _delivered(sink, "Re: [demo] Who is going").get("bob@example.com"),
                            what="the second post, a reply")
        assert second["In-Reply-To"] == f"<{post.message_id}>"

    _with_bot(tmp_path, db_url, sink, store, test)


def test_a_held_post_is_removed_the_author_told_and_it_is_in_the_queue(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, members=MEMBERS, emergency=True)
    _link(store, "jane@example.com", JANE)

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        thread_id = discord.thread("Urgent question")
        message_id = discord.say(thread_id, JANE, "Can someone help?")
        discord.call(discord.double.wait_for("DELETE", f"/channels/{thread_id}/messages/{message_id}"))
        [told] = wait_until(lambda: discord.double.dms_to(JANE), what="the DM to the author")
        assert "held" in told and "moderators will look at it" in told
        listing = ask("queue", MOD, roles=("Moderators",))
        assert "jane@example.com" in listing and "Urgent question" in listing
        shown = cli(tmp_path / "commonroom.toml", "queue", "list", "demo")
        assert shown.exit_code == 0 and "Urgent question" in shown.output
        server.drain()
        assert _delivered(sink, "Urgent question") == {}

    _with_bot(tmp_path, db_url, sink, store, test)


def test_an_unlinked_user_is_told_how_to_link_once_and_nothing_is_sent(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE)

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        thread_id = discord.thread("Hello")
        discord.say(thread_id, STRANGER, "Hi all")
        discord.say(thread_id, STRANGER, "Anyone?")
        [told] = wait_until(lambda: discord.double.dms_to(STRANGER), what="the how-to-link DM")
        assert "/link email:" in told
        discord.say(thread_id, JANE, "Hello stranger")  # handled after the stranger's two
        wait_until(lambda: _delivered(sink, "Hello").get("bob@example.com"), what="Jane's post")
        assert len(discord.double.dms_to(STRANGER)) == 1  # once a day, not per message
        assert [p.from_address for p in _posts(store)] == ["jane@example.com"]
        assert not [r for r in discord.double.requests if r.method == "DELETE"]

    _with_bot(tmp_path, db_url, sink, store, test)


def test_messages_from_bots_and_webhooks_are_ignored(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE)

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        thread_id = discord.thread("Echoes")
        double = discord.double
        discord.say(thread_id, JANE, "from a bot account", bot=True)
        discord.say(thread_id, JANE, "relayed by a webhook", webhook_id="999999999999999999")
        discord.say(thread_id, double.bot_id, "the bot itself", bot=True)
        discord.say(double.channels["general"], JANE, "not in a bridged thread")
        discord.say(thread_id, JANE, "a person")
        wait_until(lambda: _posts(store), what="the person's post")
        # A thread discord.py was not told about: the bot asks Discord what it is.
        unannounced = discord.thread("Unannounced", announce=False)
        discord.say(unannounced, JANE, "in an unannounced thread")
        wait_until(lambda: len(_posts(store)) == 2, what="the post in the unannounced thread")
        assert [p.subject for p in _posts(store)] == ["Echoes", "Unannounced"]

    _with_bot(tmp_path, db_url, sink, store, test)


def test_gateway_drop_and_resume_lose_nothing_and_double_nothing(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store,
        caplog: pytest.LogCaptureFixture) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE)

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        double = discord.double
        thread_id = discord.thread("Resume")
        discord.say(thread_id, JANE, "before the drop")
        wait_until(lambda: len(_posts(store)) == 1, what="the first post")
        handled_seq = double.last_seq()
        discord.call(double.drop_gateway())
        for n in range(3):  # while the gateway is down: queued, replayed after RESUME
            discord.say(thread_id, JANE, f"while down {n}")
        wait_until(lambda: double.resumed == 1, what="the RESUME")
        wait_until(lambda: len(_posts(store)) == 4, what="the three posts sent while down")
        discord.call(double.redeliver(handled_seq))  # an event handled already, again
        discord.say(thread_id, JANE, "after the resume")
        wait_until(lambda: any(b"after the resume" in p.raw for p in _posts(store)),
                   what="the post after the resume")
        server.drain()
        texts = [p.subject for p in _posts(store)]
        assert texts == ["Resume"] + ["Re: Resume"] * 4
        bodies = [m.data for m in sink.messages if "bob@example.com" in m.rcpt_tos]
        assert len(bodies) == 5 and double.identified == 1
        # The replay was recognised, not refused by the database with an error.
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    _with_bot(tmp_path, db_url, sink, store, test)


def test_a_hostile_display_name_cannot_inject_headers(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store) -> None:
    make_list(store, members=MEMBERS)
    _link(store, "jane@example.com", JANE, name="")  # no name in the store: Discord's is used

    def test(discord: Discord, server: Running, ask: Callable[..., str]) -> None:
        thread_id = discord.thread("Names")
        discord.say(thread_id, JANE, "hi", name="Eve\r\nBcc: victim@example.net\x00")
        discord.say(thread_id, JANE, "hi again",
                    name="=?utf-8?q?Eve=0D=0ABcc=3A_victim=40example.net?=")
        wait_until(lambda: len(_delivered(sink, "Names")) == 2
                   and len([m for m in sink.messages if "bob@example.com" in m.rcpt_tos]) == 2,
                   what="both posts delivered")
        for m in sink.messages:
            assert "victim@example.net" not in m.rcpt_tos
            head = m.data.split(b"\r\n\r\n", 1)[0]
            assert b"\r\nBcc:" not in head and b"\r\nbcc:" not in head.lower()
            msg = message_from_bytes(m.data, policy=email.policy.default)
            assert msg["Bcc"] is None
            if "Names" in str(msg["Subject"]):
                [author] = msg["From"].addresses
                assert author.addr_spec == "jane@example.com"
                assert "\n" not in author.display_name and "\r" not in author.display_name

    _with_bot(tmp_path, db_url, sink, store, test)
