"""Commands sent to LIST-request: read them from the subject and body (pure), carry them out.

Mailman-compatible: one command per line, the subject counts as a line, reading stops at the
first line that is not a command after a few tries (signatures, quoted text), and the reply
lists every line understood and what became of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session

from listserv import notices, outbox, subscriptions
from listserv.config import Config
from listserv.lists import list_info
from listserv.models import MailingList

COMMANDS = {"subscribe": "subscribe", "join": "subscribe", "unsubscribe": "unsubscribe",
            "leave": "unsubscribe", "signoff": "unsubscribe", "help": "help", "confirm": "confirm",
            "end": "end", "stop": "end"}
MAX_UNKNOWN_LINES = 5  # Mailman stops after this many lines it does not understand
MAX_COMMANDS = 10


@dataclass(frozen=True)
class Command:
    name: str  # a value of COMMANDS
    args: tuple[str, ...]
    line: str  # as written, for the reply


def parse_commands(subject: str, body: str) -> list[Command]:
    found: list[Command] = []
    unknown = 0
    lines = [re.sub(r"^\s*(?:(?:re|aw|fwd?)\s*:\s*)+", "", subject, flags=re.I)]
    lines += body.splitlines()
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            break  # quoted text starts: whatever follows is not from the sender
        words = line.split()
        name = COMMANDS.get(words[0].lower().rstrip(":"))
        if name is None:
            unknown += 1
            if unknown >= MAX_UNKNOWN_LINES:
                break
            continue
        if name == "end":
            break
        cmd = Command(name, tuple(words[1:3]), line[:200])
        if cmd not in found:  # a subject repeated in the body is one command
            found.append(cmd)
        if len(found) >= MAX_COMMANDS:
            break
    return found


def handle(session: Session, cfg: Config, ml: MailingList, sender: str, subject: str,
           body: str) -> list[tuple[str, str]]:
    """Carry out the commands; returns (line, outcome) pairs and queues the reply."""
    assert ml.id is not None
    results: list[tuple[str, str]] = []
    for cmd in parse_commands(subject, body):
        if cmd.name in ("subscribe", "unsubscribe"):
            outcome = subscriptions.request(session, cfg, ml, sender, cmd.name, via="request")
            results.append((cmd.line, outcome.message))
        elif cmd.name == "confirm" and cmd.args:
            outcome = subscriptions.confirm(session, cfg, cmd.args[0], via="request")
            results.append((cmd.line, outcome.message))
        elif cmd.name == "help":
            results.append((cmd.line, "the help text is below"))
        else:
            results.append((cmd.line, "this command needs an argument"))
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                          sender=info.address("bounces"),
                          payload=notices.request_results(info, sender, results))
    return results

