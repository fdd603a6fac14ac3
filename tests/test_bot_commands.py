"""The slash commands added for issue 8's command list, through the wire: held-post buttons
(/queue cards, presses and the reject modal), /approve future:, /member info|set, /digest
preview|send|mode and /subscribe, as gateway INTERACTION_CREATE events against the Discord
API double, on a server that receives and delivers mail over loopback SMTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from listserv.models import (
    AuditEntry,
    DeliveryMode,
    DigestPeriod,
    DiscordLink,
    DiscordRelay,
    Held,
    MailingList,
    Person,
    Subscription,
)
from listserv.store import Store
from listserv.subscriptions import find_subscription, moderators
from tests.bot_harness import threaded_bot_server
from tests.discord_double import ThreadedDouble, UserOption
from tests.harness import DOMAIN, Running, cli, mail, make_list, parse, wait_until
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
               **discord: str) -> Iterator[tuple[Bot, Running]]:
    with threaded_bot_server(tmp_path, db_url, sink, store, **discord) as (_ask, server,
                                                                         threaded, _perms):
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
