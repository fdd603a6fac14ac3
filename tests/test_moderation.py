"""Moderation decisions that are pure: which replies to a held notice act (issue 7.6)."""

from __future__ import annotations

import pytest

from listserv.models import Action
from listserv.moderation import ReplyCommand, parse_reply


@pytest.mark.parametrize("text,command", [
    ("approve", ReplyCommand(Action.ACCEPT)),
    ("  Approve  \n\n> quoted", ReplyCommand(Action.ACCEPT)),
    ("APPROVE ALWAYS", ReplyCommand(Action.ACCEPT, future="accept")),
    ("approve   hold", ReplyCommand(Action.ACCEPT, future="hold")),
    ("reject", ReplyCommand(Action.REJECT)),
    ("reject Please ask on the suppliers' list", ReplyCommand(
        Action.REJECT, reason="Please ask on the suppliers' list")),
    ("discard", ReplyCommand(Action.DISCARD)),
    ("\n> approve\n\ndiscard", ReplyCommand(Action.DISCARD)),
    # Chatty first lines never act, even when they start with a word that used to be a verb.
    ("OK, but ask them to shorten it", None),
    ("ok", None),
    ("Ok thanks", None),
    ("Approve? I'm not sure this belongs here", None),
    ("approve, but only this once", None),
    ("approve it if you think so", None),
    ("Accept this one", None),
    ("Delete the attachment and resend", None),
    ("discard everything I said yesterday", None),
    ("Decline politely", None),
    ("Thanks, I'll approve it later", None),
    ("On Wed, 25 Nov 2026, Commonroom wrote:\n> approve", None),
    ("", None),
])
def test_only_a_documented_command_as_the_first_line_acts(text: str,
                                                          command: ReplyCommand | None) -> None:
    assert parse_reply(text) == command
