"""Commands sent to LIST-request: read them from the subject and body (pure), carry them out.

Mailman-compatible: one command per line, the subject counts as a line, reading stops at the
first line that is not a command after a few tries (signatures, quoted text), and the reply
lists every line understood and what became of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session

from listserv import bounces, events, mod_mail, notices, outbox, subscriptions
from listserv.addresses import Kind
from listserv.config import Config
from listserv.lists import list_info
from listserv.models import DeliveryMode, MailingList, utcnow

COMMANDS = {"subscribe": "subscribe", "join": "subscribe", "unsubscribe": "unsubscribe",
            "leave": "unsubscribe", "signoff": "unsubscribe", "help": "help", "confirm": "confirm",
            "end": "end", "stop": "end", "digest": "digest", "set": "digest",
            "attend": "attend", "cancel": "event-leave", "enable": "enable"}
# "leave N" / "cancel N" with an event number is about the event, not the list.
EVENT_LEAVE_WORDS = ("leave", "cancel")
# "digest plain|mime|html|off" (Mailman's "set delivery ..." spelling works too).
DIGEST_MODES = {"plain": DeliveryMode.PLAIN, "text": DeliveryMode.PLAIN, "rfc1153": DeliveryMode.PLAIN,
                "mime": DeliveryMode.MIME, "html": DeliveryMode.HTML, "off": DeliveryMode.EACH,
                "each": DeliveryMode.EACH, "none": DeliveryMode.NOMAIL, "nomail": DeliveryMode.NOMAIL}
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
        if words[0].lower() in EVENT_LEAVE_WORDS and len(words) > 1 and words[1].isdigit():
            name = "event-leave"
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
    mailed = mod_mail.parse_request(subject, body)
    if mailed is not None:  # a moderator's tool: the whole body is its fields, no commands
        line = f"{mailed.tool.value} request"
        results.append((line, mod_mail.request(session, cfg, ml, sender, mailed)))
    for cmd in parse_commands(subject, body) if mailed is None else []:
        if cmd.name in ("subscribe", "unsubscribe"):
            outcome = subscriptions.request(session, cfg, ml, sender, cmd.name, via="request")
            results.append((cmd.line, outcome.message))
        elif cmd.name == "confirm" and cmd.args:
            outcome = subscriptions.confirm(session, cfg, cmd.args[0], via="request")
            results.append((cmd.line, outcome.message))
        elif cmd.name == "digest":
            results.append((cmd.line, set_delivery(session, cfg, ml, sender, cmd.args)))
        elif cmd.name in ("attend", "event-leave") and cmd.args:
            results.append((cmd.line, event_command(session, cfg, ml, sender, cmd)))
        elif cmd.name == "enable":
            # No confirmation round-trip: a forged From can only turn mail back on to an
            # address that was bouncing, which bounces again and is disabled again.
            results.append((cmd.line, bounces.enable(session, ml, sender, actor=sender,
                                                     via="request").message))
        elif cmd.name == "help":
            results.append((cmd.line, "the help text is below"))
        else:
            results.append((cmd.line, "this command needs an argument"))
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                          sender=info.address(Kind.BOUNCES),
                          payload=notices.request_results(info, sender, results))
    return results


def event_command(session: Session, cfg: Config, ml: MailingList, sender: str,
                  cmd: Command) -> str:
    """"attend N" / "leave N": said from the member's own address, like a post; attending
    changes no membership, so no confirmation round-trip is asked for."""
    event = events.find(session, int(cmd.args[0])) if cmd.args[0].isdigit() else None
    if event is None or event.list_id != ml.id:
        return f"{ml.name} has no event {cmd.args[0]}"
    if cmd.name == "attend":
        return events.attend(session, cfg, event, sender, via="email", now=utcnow()).message
    return events.leave(session, cfg, event, sender, via="email", now=utcnow())


def set_delivery(session: Session, cfg: Config, ml: MailingList, sender: str,
                 args: tuple[str, ...]) -> str:
    """"digest plain|mime|html|off": asks the member's own address to confirm the change, the
    way leaving is confirmed (a forged From must not switch anybody's delivery)."""
    words = [a.lower() for a in args if a.lower() != "delivery"]  # "set delivery mime"
    mode = DIGEST_MODES.get(words[0]) if words else None
    if mode is None:
        return "say which: digest plain, digest mime, digest html or digest off"
    outcome = subscriptions.request(session, cfg, ml, sender, subscriptions.delivery_action(mode),
                                    via="request")
    return outcome.message
