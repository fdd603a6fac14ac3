"""Moderators' tools by mail: ``event add``, ``competition start`` or ``schedule add`` written
to LIST-request (as the subject or the first line), then ``Key: value`` lines, then a blank
line and the free text (an event's description, how to enter, the post's body):

    Subject: event add

    Title: Breakfast meeting for councils
    Start: 2026-09-03T09:30
    End: 2026-09-03T12:30
    Where: Ripley Town Hall

    A free breakfast meeting. Book yourself a place.

Invariants:
- From can be forged, so nothing is created from the request itself: a moderator's checked
  request is kept as a ``Pending`` row (action ``add-…``, the checked fields as JSON) and a
  confirmation is mailed to the moderator's own address; the item is created when that
  address confirms (reply, LIST-confirm+TOKEN, ``confirm TOKEN`` to LIST-request, or the
  web page's POST button), all through ``subscriptions.confirm``.
- On confirming, the address must still moderate the list and the fields are checked again.
- Someone who does not moderate the list gets a refusal and nothing is kept.
- ``parse_request`` is pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from listserv import audit, links, mod_tools, notices, outbox, subscriptions
from listserv.addresses import Kind
from listserv.config import Config
from listserv.decorate import ListInfo
from listserv.lists import list_info
from listserv.mod_tools import Tool
from listserv.models import MailingList, Pending, utcnow

COMMANDS = {"event add": Tool.EVENT, "competition start": Tool.COMPETITION,
            "schedule add": Tool.SCHEDULE}
# Pending.action (16 characters at most); the prefix makes subscriptions.confirm hand over.
ACTIONS = {tool: subscriptions.TOOL_PREFIX + tool.value for tool in Tool}
# Mailed keys (lower case) to the form's field names; aliases are the CLI's option names.
KEYS = {"title": "title", "start": "start", "end": "end", "timezone": "timezone", "tz": "timezone",
        "where": "where", "booking": "booking", "booking-url": "booking", "capacity": "capacity",
        "description": "description", "prize": "prize", "how": "how", "closes": "closes",
        "reserves": "reserves", "exclude-org": "exclude_org", "at": "at", "every": "every",
        "from": "from", "subject": "subject", "body": "body"}
MAX_PER_DAY = 20  # confirmations mailed per moderator address per day (a forged From floods)
_COMMAND = re.compile(r"^(event\s+add|competition\s+start|schedule\s+add)\s*$", re.I)
_KEY = re.compile(r"^([A-Za-z][A-Za-z-]*)\s*:\s*(.*)$")
_REPLY = re.compile(r"^\s*(?:(?:re|aw|fwd?)\s*:\s*)+", re.I)


@dataclass(frozen=True)
class Mailed:
    tool: Tool
    fields: dict[str, str]
    unknown: tuple[str, ...]  # key lines not understood, as written


def _tool(line: str) -> Tool | None:
    m = _COMMAND.match(_REPLY.sub("", line).strip())
    return COMMANDS[" ".join(m.group(1).lower().split())] if m else None


def parse_request(subject: str, body: str) -> Mailed | None:
    """The tool request in a mail to LIST-request, or None when it is not one (other
    commands are ``listserv.requests``')."""
    lines = body.replace("\r\n", "\n").split("\n")
    tool = _tool(subject)
    if tool is None:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None or (tool := _tool(lines[first])) is None:
            return None
        lines = lines[first + 1:]
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _tool(lines[0]) is tool:  # the subject's command again as the first line
        lines.pop(0)
    while lines and not lines[0].strip():
        lines.pop(0)
    fields: dict[str, str] = {}
    unknown: list[str] = []
    while lines and lines[0].strip():
        line = lines.pop(0).strip()
        m = _KEY.match(line)
        name = KEYS.get(m.group(1).lower()) if m else None
        if m is None or name not in mod_tools.FIELDS[tool]:
            unknown.append(line[:80])
            continue
        fields[name] = m.group(2).strip()
    text = "\n".join(lines)
    text = re.split(r"^-- ?$", text, maxsplit=1, flags=re.M)[0]  # a signature is not the text
    if text.strip():
        fields[mod_tools.TEXT_FIELD[tool]] = text.strip("\n").rstrip()
    return Mailed(tool, fields, tuple(unknown))


def may_moderate(session: Session, ml: MailingList, email: str) -> bool:
    assert ml.id is not None
    return email in subscriptions.moderators(session, ml.id)


def request(session: Session, cfg: Config, ml: MailingList, sender: str,
            mailed: Mailed) -> str:
    """Check a mailed request; mail its confirmation to ``sender`` (a moderator). Returns the
    outcome for the reply to the request."""
    assert ml.id is not None
    noun = mailed.tool.value
    if not may_moderate(session, ml, sender):
        audit.record(session, list_id=ml.id, actor=sender, action=f"{ACTIONS[mailed.tool]}-refused",
                     target=ml.name, detail="not a moderator (via request)")
        return (f"only moderators of {ml.name} can add a {noun} by mail, and {sender} is not "
                "one; nothing was done")
    if mailed.unknown:
        keys = ", ".join(k.split(":")[0] for k in mailed.unknown)
        allowed = ", ".join(k.replace("_", "-").capitalize() for k in mod_tools.FIELDS[mailed.tool])
        return f"not understood: {keys} (a {noun} takes {allowed}); nothing was done"
    now = utcnow()
    checked = mod_tools.check(session, ml, mailed.tool, mailed.fields, moderator=sender, now=now)
    if not checked.ok:
        return "nothing was done: " + "; ".join(f"{k.replace('_', '-').capitalize()}: {p}"
                                                for k, p in checked.errors.items())
    recent = session.exec(select(func.count()).select_from(Pending).where(
        Pending.email == sender, col(Pending.action).in_(ACTIONS.values()),
        Pending.created_at > now - timedelta(days=1))).one()
    if recent >= MAX_PER_DAY:
        return f"too many requests from {sender} today; try again tomorrow"
    token = links.new_token()
    session.add(Pending(token_hash=links.token_hash(token), list_id=ml.id, email=sender,
                        action=ACTIONS[mailed.tool], payload=json.dumps(checked.values),
                        created_at=now, expires_at=now + subscriptions.CONFIRM_TTL))
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                          sender=info.address(Kind.BOUNCES),
                          payload=confirmation(info, sender, token, mailed.tool, checked.values,
                                               ml.timezone))
    audit.record(session, list_id=ml.id, actor=sender, action=f"{ACTIONS[mailed.tool]}-requested",
                 target=ml.name, detail="via request")
    return f"a confirmation request was sent to {sender}; the {noun} is created when you confirm"


def confirmation(info: ListInfo, to: str, token: str, tool: Tool,
                 values: dict[str, str], tz: str) -> bytes:
    confirm_addr = info.address(Kind.CONFIRM, token)
    body = "\n".join([
        f"Someone (hopefully you) asked by mail to add this {tool.value} to {info.post_address}:",
        "", *[f"  {line}" if line else "" for line in mod_tools.summary(tool, values, tz)], "",
        "To create it (and announce it to the list), do any one of these:",
        "  - reply to this message (the subject and text can stay as they are);",
        f"  - send an empty message to {confirm_addr};",
        f"  - open {links.confirm_url(info.web_base_url, token)}", "",
        "If you did not ask for this, ignore this message: nothing happens unless you confirm,",
        "and the request expires in 72 hours."]) + "\n"
    return notices._base(info, to, f"confirm {token}", body, reply_to=confirm_addr,
                         from_addr=confirm_addr).as_bytes()


def tool_of(action: str) -> Tool | None:
    return next((t for t, a in ACTIONS.items() if a == action), None)


def describe(pending: Pending, list_name: str) -> str:
    """What confirming does, in words ("add the event “Breakfast” to demo"). Pure."""
    tool = tool_of(pending.action)
    values = json.loads(pending.payload or "{}")
    name = values.get({Tool.EVENT: "title", Tool.COMPETITION: "prize",
                       Tool.SCHEDULE: "subject"}.get(tool or Tool.EVENT, "title"), "")
    return f"add the {tool.value if tool else 'item'} \u201c{name}\u201d to {list_name}"


def confirmed(session: Session, cfg: Config, pending: Pending, *,
              via: str) -> subscriptions.Outcome:
    """The moderator's address said yes: create the item (``pending`` is already marked used)."""
    tool = tool_of(pending.action)
    ml = session.get(MailingList, pending.list_id)
    assert tool is not None and ml is not None and ml.id is not None
    if not may_moderate(session, ml, pending.email):
        return subscriptions.Outcome(False, f"{pending.email} no longer moderates {ml.name}; "
                                            "nothing was created")
    done = mod_tools.create(session, cfg, ml, tool, json.loads(pending.payload or "{}"),
                            moderator=pending.email, actor=pending.email, now=utcnow())
    if done.ok and via != "request":  # by LIST-request the reply to that says it already
        info = list_info(ml, cfg)
        outbox.enqueue_notice(session, list_id=ml.id, recipient=pending.email,
                              sender=info.address(Kind.BOUNCES), payload=notices.notice(
                                  info, pending.email, f"Done: {done.message}",
                                  f"Confirmed: {done.message}.\n").as_bytes())
    return subscriptions.Outcome(done.ok, done.message if done.ok
                                 else f"nothing was created: {done.message}")
