"""The slash commands added for issue 8's command list, through the wire: held-post buttons
(/queue cards, presses and the reject modal), /approve future:, /member info|set, /digest
preview|send|mode and /subscribe, as gateway INTERACTION_CREATE events against the Discord
API double, on a server that receives and delivers mail over loopback SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.cogs.held import card_text
from listserv import discord_subscribe
from listserv.config import Config
from listserv.models import (
    Address,
    AuditEntry,
    DeliveryMode,
    DigestPeriod,
    DiscordLink,
    DiscordRelay,
    Held,
    MailingList,
    Message,
    Person,
    Subscription,
)
from listserv.moderation import QueueItem
from listserv.store import Store
from listserv.subscriptions import find_subscription, moderators
from tests.bot_harness import threaded_bot_server
from tests.discord_double import ThreadedDouble, UserOption
from tests.harness import Running, cli, mail, make_list, parse, wait_until
from tests.smtpsink import SmtpSink
from tests.test_bot_links import answer_text
from tests.test_bot_moderation import MEMBERS, MOD_USER, OTHER_USER, OUTSIDER, POST

MOD = ("Moderators",)
ACTOR = f"discord:{MOD_USER} (user{MOD_USER[-4:]})"
SECOND_MOD = "999999999999999999"
UPDATE_MESSAGE, MODAL = 7, 9


class Bot:
    """What a test does with the bot: commands, presses and modal submits, and the answers."""

    def __init__(self, threaded: ThreadedDouble) -> None:
        self.threaded = threaded
        self.double = threaded.double

    def run(self, coro: Any) -> Any:
        return self.threaded.call(coro)

    def command(self, name: str, user: str, options: dict[str, Any] | None = None, *,
                sub: str | None = None, roles: tuple[str, ...] = ()) -> tuple[str, Any]:
        iid = self.run(self.double.command(name, user, options, sub=sub, roles=roles))
        return iid, self.run(self.double.callback_for(iid))

    def ask(self, name: str, user: str, options: dict[str, Any] | None = None, *,
            sub: str | None = None, roles: tuple[str, ...] = ()) -> str:
        return answer_text(self.command(name, user, options, sub=sub, roles=roles)[1])

    def press(self, custom_id: str, user: str, card: dict[str, Any], *,
              roles: tuple[str, ...] = ()) -> Any:
        iid = self.run(self.double.press(custom_id, user, card, roles=roles))
        return self.run(self.double.callback_for(iid))

    def card(self, body: dict[str, Any]) -> dict[str, Any]:
        """The message a callback or follow-up body made, to press its buttons."""
        data = body.get("data", body)
        return self.double.card(data["content"], data.get("components", []))


def custom_ids(card: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in card["components"] for c in row["components"]]


@contextmanager
def bot_server(tmp_path: Path, db_url: str, sink: SmtpSink, store: Store,
               digest_channel: str = "") -> Iterator[tuple[Bot, Running]]:
    with threaded_bot_server(tmp_path, db_url, sink, store, digest_channel=digest_channel) as (
            _ask, server, threaded, _perms):
        yield Bot(threaded), server


def _hold(server: Running, store: Store, *subjects: str) -> list[int]:
    for subject in subjects:
        server.send(OUTSIDER, POST, mail(OUTSIDER, POST, subject))
    server.drain()
    with store.session() as s:
        return [h.id for h in s.exec(select(Held).order_by(Held.id))]  # type: ignore[arg-type,misc]


def _delivered(sink: SmtpSink, subject: str) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in sink.messages
                  if str(parse(m.data)["Subject"]).startswith(f"[demo] {subject}"))


def test_approve_by_button_delivers_once(tmp_path: Path, db_url: str, sink: SmtpSink,
                                         store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with bot_server(tmp_path, db_url, sink, store) as (bot, server):
        [held_id] = _hold(server, store, "Buttons please")
        sink.messages.clear()
        _iid, body = bot.command("queue", MOD_USER, roles=MOD)
        card = bot.card(body)
        assert f"**{held_id}** · demo · {OUTSIDER} · Buttons please · " in card["content"]
        assert "not a member" in card["content"]  # the policy reason
        assert custom_ids(card) == [f"cr:held:{a}:{held_id}" for a in
                                    ("approve", "reject", "discard")]

        # Someone without the role: refused, nothing changes.
        refusal = answer_text(bot.press(f"cr:held:approve:{held_id}", OTHER_USER, card))
        assert "for moderators" in refusal and "Moderators" in refusal
        with store.session() as s:
            assert s.get(Held, held_id).resolved_at is None  # type: ignore[union-attr]

        done = bot.press(f"cr:held:approve:{held_id}", MOD_USER, card, roles=MOD)
        assert done["type"] == UPDATE_MESSAGE, done
        assert done["data"]["components"] == []  # the card loses its buttons
        assert f"held post {held_id} approved" in done["data"]["content"]
        wait_until(lambda: _delivered(sink, "Buttons please") == list(MEMBERS),
                   what="the approved post delivered to the members")

        # A second press, by another moderator on the same card: told who handled it.
        again = answer_text(bot.press(f"cr:held:approve:{held_id}", SECOND_MOD, card, roles=MOD))
        assert f"held post {held_id} was already handled: accept by {ACTOR}" in again
        server.drain()
        assert _delivered(sink, "Buttons please") == list(MEMBERS)  # once each
        with store.session() as s:
            actors = [e.actor for e in s.exec(select(AuditEntry)) if e.action == "held-accept"]
        assert actors == [ACTOR]

        # A card this bot never sent (as after a restart): the press is understood by its
        # custom_id alone.
        [_, later] = _hold(server, store, "Later")
        button = {"type": 2, "style": 2, "label": "Discard", "custom_id": f"cr:held:discard:{later}"}
        old_card = bot.double.card(f"**{later}** · demo", [{"type": 1, "components": [button]}])
        done = bot.press(f"cr:held:discard:{later}", MOD_USER, old_card, roles=MOD)
        assert f"held post {later} discarded" in done["data"]["content"]


def test_queue_cards_reject_by_modal_and_approve_future(tmp_path: Path, db_url: str,
                                                        sink: SmtpSink, store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with bot_server(tmp_path, db_url, sink, store) as (bot, server):
        first, second, third = _hold(server, store, "One", "Two", "Three")
        iid, body = bot.command("queue", MOD_USER, roles=MOD)
        followups = bot.run(bot.double.followups_for(iid, 2))
        cards = [bot.card(body), *(bot.card(f) for f in followups)]
        assert [custom_ids(c)[0] for c in cards] == [f"cr:held:approve:{n}"
                                                     for n in (first, second, third)]
        assert all(f["flags"] & 64 for f in followups)  # ephemeral

        # Reject asks for the reason in a modal, one per post and moderator.
        asked = bot.press(f"cr:held:reject:{first}", MOD_USER, cards[0], roles=MOD)
        assert asked["type"] == MODAL, asked
        modal = asked["data"]
        assert modal["custom_id"] == f"cr:held:reason:{first}:{MOD_USER}"
        [field] = [c["custom_id"] for row in modal["components"] for c in row["components"]]
        # The role was taken away between the press and the submit: refused, nothing changes.
        iid = bot.run(bot.double.submit(modal["custom_id"], MOD_USER, {field: "spam"},
                                        message=cards[0]))
        assert "for moderators" in answer_text(bot.run(bot.double.callback_for(iid)))
        with store.session() as s:
            assert s.get(Held, first).resolved_at is None  # type: ignore[union-attr]
        assert bot.press(f"cr:held:reject:{first}", MOD_USER, cards[0], roles=MOD)["data"] \
            == modal  # asked again
        iid = bot.run(bot.double.submit(modal["custom_id"], MOD_USER, {field: "off topic"},
                                        message=cards[0], roles=MOD))
        done = bot.run(bot.double.callback_for(iid))
        assert done["type"] == UPDATE_MESSAGE and f"held post {first} rejected" in \
            done["data"]["content"]
        with store.session() as s:
            held = s.get(Held, first)
            assert held is not None and held.resolution == "reject"
            post = s.get(Message, held.message_pk)
            assert post is not None and post.reason == f"reject by {ACTOR}: off topic"

        # Discard by button.
        done = bot.press(f"cr:held:discard:{second}", MOD_USER, cards[1], roles=MOD)
        assert f"held post {second} discarded" in done["data"]["content"]

        # /approve with future: the sender's posts are accepted from now on.
        text = bot.ask("approve", MOD_USER, {"id": third, "future": "accept"}, roles=MOD)
        assert text.startswith(f"held post {third} approved") and "future posts" in text, text
        with store.session() as s:
            [ml] = s.exec(select(MailingList)).all()
            sub = find_subscription(s, ml.id or 0, OUTSIDER)
            assert sub is not None and sub.moderation == "accept"
        assert bot.ask("queue", MOD_USER, roles=MOD) == "Nothing is held."


LINKED = "444444444444444444"
UNLINKED = "333333333333333333"


def _link(store: Store, user_id: str, email: str) -> None:
    with store.session() as s:
        person_id = s.exec(select(Address.person_id).where(Address.email == email)).one()
        s.add(DiscordLink(discord_user_id=user_id, person_id=person_id))


def test_member_info_and_set_change_what_the_cli_shows(tmp_path: Path, db_url: str,
                                                      sink: SmtpSink, store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    _link(store, LINKED, MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        text = bot.ask("member", MOD_USER, {"list": "demo", "address": MEMBERS[0].upper(),
                                            "vendor": "Acme Ltd", "official": "on",
                                            "role": "moderator"}, sub="set", roles=MOD)
        assert text == (f"{MEMBERS[0]} on demo: vendor staff (Acme Ltd); posts in an official "
                        "capacity; role moderator"), text
        listed = cli(tmp_path / "commonroom.toml", "members", "list", "demo").output
        assert f"{MEMBERS[0]}\t (Acme Ltd, vendor)\tmoderator\teach" in listed, listed
        with store.session() as s:
            assert moderators(s, 1) == [MEMBERS[0]]
            assert [e.actor for e in s.exec(select(AuditEntry))
                    if e.action == "member-changed"] == [ACTOR]

        # By Discord user: the linked person's address on the list.
        text = bot.ask("member", MOD_USER, {"list": "demo", "user": UserOption(LINKED),
                                            "vendor": "Beta plc"}, sub="set", roles=MOD)
        assert text == f"{MEMBERS[1]} on demo: vendor staff (Beta plc)", text
        info = bot.ask("member", MOD_USER, {"user": UserOption(LINKED)}, sub="info", roles=MOD)
        assert info.splitlines() == [
            f"**<@{LINKED}>** (Beta plc, vendor) · addresses: {MEMBERS[1]}",
            f"- demo: {MEMBERS[1]} · member · delivery each"], info
        info = bot.ask("member", MOD_USER, {"address": MEMBERS[0]}, sub="info", roles=MOD)
        assert "· official" in info and "moderator" in info

        # What cannot be done is said, and nothing changes.
        for opts, sub, says in (
                ({"user": UserOption(UNLINKED)}, "info", "has not linked"),
                ({"address": "nobody@example.org"}, "info", "is not known here"),
                ({}, "info", "Give either"),
                ({"list": "demo", "address": "x@example.org", "user": UserOption(LINKED),
                  "role": "owner"}, "set", "Give either"),
                ({"list": "demo", "address": "nobody@example.org", "role": "owner"}, "set",
                 "is not subscribed to demo"),
                ({"list": "demo", "address": MEMBERS[0], "vendor": " ",
                  }, "set", "needs the organisation"),
                ({"list": "demo", "address": MEMBERS[0]}, "set", "Nothing to change"),
                ({"list": "nope", "address": MEMBERS[0], "role": "owner"}, "set", "no list")):
            assert says in bot.ask("member", MOD_USER, opts, sub=sub, roles=MOD), (opts, says)
        assert cli(tmp_path / "commonroom.toml", "members", "list", "demo").output == (
            f"{MEMBERS[0]}\t (Acme Ltd, vendor)\tmoderator\teach\n"
            f"{MEMBERS[1]}\t (Beta plc, vendor)\tmember\teach\n")


def test_digest_mode_for_a_linked_member(tmp_path: Path, db_url: str, sink: SmtpSink,
                                         store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    _link(store, LINKED, MEMBERS[1])
    with bot_server(tmp_path, db_url, sink, store) as (bot, _server):
        text = bot.ask("digest", LINKED, {"mode": "mime"}, sub="mode")
        assert text == f"{MEMBERS[1]} will get the weekly digest (mime) instead of each post"
        with store.session() as s:
            sub = find_subscription(s, 1, MEMBERS[1])
            assert sub is not None and sub.delivery_mode == DeliveryMode.MIME.value
            [entry] = [e for e in s.exec(select(AuditEntry)) if e.action == "delivery-changed"]
            assert entry.actor == f"discord:{LINKED}" and entry.detail == "mime (via discord)"
        assert "each post" in bot.ask("digest", LINKED, {"mode": "each", "list": "demo"},
                                      sub="mode")
        assert "/link" in bot.ask("digest", UNLINKED, {"mode": "nomail"}, sub="mode")
        assert "no list called" in bot.ask("digest", LINKED, {"mode": "each", "list": "nope"},
                                           sub="mode")


def test_subscribe_mails_a_confirmation_and_answers_alike(tmp_path: Path, db_url: str,
                                                          sink: SmtpSink, store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    newcomer = "newcomer@example.org"
    with bot_server(tmp_path, db_url, sink, store) as (bot, server):
        stranger = bot.ask("subscribe", UNLINKED, {"email": newcomer})
        member = bot.ask("subscribe", LINKED, {"email": MEMBERS[0]})
        assert stranger.replace(newcomer, "X") == member.replace(MEMBERS[0], "X"), (stranger,
                                                                                    member)
        server.drain()
        [confirm] = [m for m in sink.messages if list(m.rcpt_tos) == [newcomer]]
        assert "confirm" in str(parse(confirm.data)["Subject"]).lower()
        assert not [m for m in sink.messages if MEMBERS[0] in m.rcpt_tos]
        with store.session() as s:
            [entry] = [e for e in s.exec(select(AuditEntry)) if e.action == "subscribe-requested"]
            assert entry.detail == "via discord"
        assert "not an email address" in bot.ask("subscribe", UNLINKED, {"email": "nope"})


def test_subscribe_is_limited_per_discord_account(store: Store) -> None:
    make_list(store, "demo")
    with store.session() as s:
        [ml] = s.exec(select(MailingList)).all()
        answers = [discord_subscribe.request(s, Config(), ml, UNLINKED, f"p{n}@example.org")
                   for n in range(discord_subscribe.MAX_REQUESTS_PER_DAY + 1)]
        other = discord_subscribe.request(s, Config(), ml, LINKED, "q@example.org")
    assert all(a.ok for a in answers[:-1]) and other.ok
    assert not answers[-1].ok and "too many" in answers[-1].text


def test_digest_preview_and_send(tmp_path: Path, db_url: str, sink: SmtpSink,
                                 store: Store) -> None:
    make_list(store, "demo", members=MEMBERS)
    with store.session() as s:
        sub = find_subscription(s, 1, MEMBERS[1])
        assert sub is not None
        sub.delivery_mode = DeliveryMode.PLAIN.value
        s.add(sub)
    with bot_server(tmp_path, db_url, sink, store, digest_channel="general") as (bot, server):
        server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Weekly news"))
        server.drain()
        preview = bot.ask("digest", MOD_USER, sub="preview", roles=MOD)
        assert preview.startswith("Next digest of **demo**: 1 threads, 1 posts since "), preview
        assert "Weekly news" in preview and len(preview) <= 2000
        assert not _periods(store)

        iid, deferred = bot.command("digest", MOD_USER, sub="send", roles=MOD)
        assert deferred["type"] == 5 and deferred["data"]["flags"] & 64  # thinking, ephemeral
        [sent] = bot.run(bot.double.followups_for(iid, 1))
        assert sent["content"].startswith("digest of demo (vol 1, issue 1, 1 threads, 1 posts) "
                                          "queued for 1 members"), sent
        wait_until(lambda: [m for m in sink.messages if list(m.rcpt_tos) == [MEMBERS[1]]
                            and "Digest" in str(parse(m.data)["Subject"])],
                   what="the digest mailed to the plain-digest member")
        [period] = _periods(store)
        assert period.trigger == "discord" and period.copies == 1
        with store.session() as s:
            [relay] = s.exec(select(DiscordRelay).where(DiscordRelay.kind == "channel")).all()
            assert relay.channel_id == bot.double.channels["general"]
            assert "Weekly news" in relay.content and "/lists/demo/threads/" in relay.content

        iid, _deferred = bot.command("digest", MOD_USER, sub="send", roles=MOD)
        [sent] = bot.run(bot.double.followups_for(iid, 1))
        assert sent["content"].startswith("no posts in demo since "), sent  # nothing new
        with store.session() as s:  # and no second summary for an empty period
            assert len(s.exec(select(DiscordRelay).where(DiscordRelay.kind == "channel")).all()) == 1


def _periods(store: Store) -> list[DigestPeriod]:
    with store.session() as s:
        return list(s.exec(select(DigestPeriod)).all())


@pytest.mark.parametrize(("name", "sub", "options"), [
    ("member", "info", {"address": MEMBERS[0]}),
    ("member", "set", {"list": "demo", "address": MEMBERS[0], "role": "owner"}),
    ("digest", "preview", None),
    ("digest", "send", None),
    ("approve", None, {"id": 1, "future": "accept"}),
])
def test_non_moderator_is_refused_and_nothing_changes(
        tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, name: str,
        sub: str | None, options: dict[str, Any] | None) -> None:
    make_list(store, "demo", members=MEMBERS)
    with store.session() as s:
        before = [(e.actor, e.action, e.target) for e in s.exec(select(AuditEntry))]
    with bot_server(tmp_path, db_url, sink, store) as (bot, server):
        server.send(MEMBERS[0], POST, mail(MEMBERS[0], POST, "Secret plans"))
        server.drain()
        text = bot.ask(name, OTHER_USER, options, sub=sub)
    assert "for moderators" in text and "Moderators" in text, text
    assert "Secret" not in text and MEMBERS[0] not in text
    with store.session() as s:
        after = [(e.actor, e.action, e.target) for e in s.exec(select(AuditEntry))]
        assert [a for a in after if a[0].startswith("discord:")] == []
        assert s.exec(select(Subscription.role)).all() == ["member", "member"]
        assert s.exec(select(DigestPeriod)).all() == []
        assert s.exec(select(Person.kind)).all() == ["member", "member"]
    assert len(after) >= len(before)


def test_a_card_with_a_huge_subject_stays_one_message() -> None:
    item = QueueItem(7, "demo", "a@example.org", "s" * 5000, "r" * 5000, datetime.now(UTC))
    text = card_text(item)
    assert text.startswith("**7** · demo · a@example.org · sss") and len(text) < 1100
