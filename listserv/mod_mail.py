"""Moderators' tools by mail: ``event add``, ``competition start`` or ``schedule add`` written
to LIST-request (as the subject or the first line), then ``Key: value`` lines, then a blank
line and the free text (an event's description, how to enter, the post's body):

    Subject: event add

    Title: Breakfast meeting for councils
    Start: 2026-09-03T09:30
    End: 2026-09-03T12:30
    Where: Ripley Town Hall

    A free breakfast meeting. Book yourself a place.

``event change N`` / ``schedule change N`` take only the lines to change (fields not named
stay as they are); ``event cancel N``, ``schedule cancel N`` and ``competition cancel N`` take
nothing more.

Invariants:
- From can be forged, so nothing is created, changed or cancelled from the request itself: a
  moderator's checked request is kept as a ``Pending`` row (action ``add-…``, ``chg-…`` or
  ``cxl-…``, the checked fields as JSON) and a confirmation is mailed to the moderator's own
  address; it is carried out when that address confirms (reply, LIST-confirm+TOKEN,
  ``confirm TOKEN`` to LIST-request, or the web page's POST button), all through
  ``subscriptions.confirm``.
- On confirming, the address must still moderate the list, the item must still be open, and
  the fields are checked again (a change over the item's values as they are then).
- Someone who does not moderate the list gets a refusal and nothing is kept.
- ``parse_request`` is pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from listserv import audit, links, mod_tools, notices, outbox, subscriptions
from listserv.addresses import Kind
from listserv.config import Config
from listserv.decorate import ListInfo
from listserv.lists import list_info
from listserv.mod_tools import Tool
from listserv.models import Competition, Event, MailingList, Pending, ScheduledPost, utcnow

# (tool word, verb word) -> (tool, verb); change and cancel name the item's number.
COMMANDS = {("event", "add"): (Tool.EVENT, "add"), ("competition", "start"):
            (Tool.COMPETITION, "add"), ("schedule", "add"): (Tool.SCHEDULE, "add"),
            ("event", "change"): (Tool.EVENT, "change"), ("event", "cancel"): (Tool.EVENT, "cancel"),
            ("schedule", "change"): (Tool.SCHEDULE, "change"),
            ("schedule", "cancel"): (Tool.SCHEDULE, "cancel"),
            ("competition", "cancel"): (Tool.COMPETITION, "cancel")}
# Pending.action (16 characters at most); the prefixes make subscriptions.confirm hand over.
PREFIX = dict(zip(("add", "change", "cancel"), subscriptions.TOOL_PREFIXES, strict=True))
ACTIONS = {tool: PREFIX["add"] + tool.value for tool in Tool}
# Mailed keys (lower case) to the form's field names; aliases are the CLI's option names.
KEYS = {"title": "title", "start": "start", "end": "end", "timezone": "timezone", "tz": "timezone",
        "where": "where", "booking": "booking", "booking-url": "booking", "capacity": "capacity",
        "description": "description", "prize": "prize", "how": "how", "closes": "closes",
        "reserves": "reserves", "exclude-org": "exclude_org", "at": "at", "every": "every",
        "from": "from", "subject": "subject", "body": "body"}
MAX_PER_DAY = 20  # confirmations mailed per moderator address per day (a forged From floods)
_COMMAND = re.compile(r"^(event|competition|schedule)\s+(add|start|change|cancel)(?:\s+(\d+))?\s*$",
                      re.I)
_KEY = re.compile(r"^([A-Za-z][A-Za-z-]*)\s*:\s*(.*)$")
_REPLY = re.compile(r"^\s*(?:(?:re|aw|fwd?)\s*:\s*)+", re.I)


@dataclass(frozen=True)
class Mailed:
    tool: Tool
    fields: dict[str, str]
    unknown: tuple[str, ...]  # key lines not understood, as written
    verb: str = "add"  # add (or start), change, cancel
    item_id: int | None = None  # the item changed or cancelled


def _tool(line: str) -> tuple[Tool, str, int | None] | None:
    m = _COMMAND.match(_REPLY.sub("", line).strip())
    found = COMMANDS.get((m.group(1).lower(), m.group(2).lower())) if m else None
    if m is None or found is None or (found[1] == "add") != (m.group(3) is None):
        return None
    return found[0], found[1], int(m.group(3)) if m.group(3) else None


def action_of(verb: str, tool: Tool) -> str:
    return PREFIX[verb] + tool.value


def verb_of(action: str) -> str:
    return next(v for v, p in PREFIX.items() if action.startswith(p))


def parse_request(subject: str, body: str) -> Mailed | None:
    """The tool request in a mail to LIST-request, or None when it is not one (other
    commands are ``listserv.requests``')."""
    lines = body.replace("\r\n", "\n").split("\n")
    command = _tool(subject)
    if command is None:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None or (command := _tool(lines[first])) is None:
            return None
        lines = lines[first + 1:]
    tool, verb, item_id = command
    if verb == "cancel":  # nothing more to read (a reason written below is for people)
        return Mailed(tool, {}, (), verb, item_id)
    allowed = mod_tools.FIELDS[tool] if verb == "add" else mod_tools.CHANGE_FIELDS[tool]
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _tool(lines[0]) == command:  # the subject's command again as the first line
        lines.pop(0)
    while lines and not lines[0].strip():
        lines.pop(0)
    fields: dict[str, str] = {}
    unknown: list[str] = []
    while lines and lines[0].strip():
        if not fields and not unknown and _KEY.match(lines[0].strip()) is None:
            break  # no "Key: value" lines: the text starts at once
        line = lines.pop(0).strip()
        m = _KEY.match(line)
        name = KEYS.get(m.group(1).lower()) if m else None
        if m is None or name not in allowed:
            unknown.append(line[:80])
            continue
        fields[name] = m.group(2).strip()
    text = "\n".join(lines)
    text = re.split(r"^-- ?$", text, maxsplit=1, flags=re.M)[0]  # a signature is not the text
    if text.strip():
        fields[mod_tools.TEXT_FIELD[tool]] = text.strip("\n").rstrip()
    return Mailed(tool, fields, tuple(unknown), verb, item_id)


def may_moderate(session: Session, ml: MailingList, email: str) -> bool:
    assert ml.id is not None
    return email in subscriptions.moderators(session, ml.id)


def _name(tool: Tool, values: dict[str, str]) -> str:
    return values.get({Tool.EVENT: "title", Tool.COMPETITION: "prize",
                       Tool.SCHEDULE: "subject"}[tool], "")


def _item_name(item: mod_tools.Item) -> str:
    return item.title if isinstance(item, Event) else (
        item.subject if isinstance(item, ScheduledPost) else item.prize)


def _check(session: Session, ml: MailingList, sender: str, mailed: Mailed,
           now: datetime) -> tuple[dict[str, object] | None, list[str], str]:
    """(the pending payload, the lines saying what confirming does, why nothing is kept)."""
    noun = mailed.tool.value
    if mailed.unknown:
        keys = ", ".join(k.split(":")[0] for k in mailed.unknown)
        table = mod_tools.FIELDS if mailed.verb == "add" else mod_tools.CHANGE_FIELDS
        allowed = ", ".join(k.replace("_", "-").capitalize() for k in table[mailed.tool])
        return None, [], f"not understood: {keys} (a {noun} takes {allowed})"
    if mailed.verb == "add":
        checked = mod_tools.check(session, ml, mailed.tool, mailed.fields, moderator=sender,
                                  now=now)
        if not checked.ok:
            return None, [], _problems(checked)
        return (dict(checked.values), mod_tools.summary(mailed.tool, checked.values, ml.timezone),
                "")
    assert mailed.item_id is not None
    item = mod_tools.open_item(session, ml, mailed.tool, mailed.item_id)
    if item is None:
        return None, [], f"{ml.name} has no {noun} {mailed.item_id} to {mailed.verb}"
    payload: dict[str, object] = {"id": mailed.item_id, "name": _item_name(item)}
    head = f"{noun.capitalize()} {mailed.item_id}: {_item_name(item)}"
    if mailed.verb == "cancel":
        return payload, [head], ""
    if not mailed.fields:
        names = ", ".join(k.capitalize() for k in mod_tools.CHANGE_FIELDS[mailed.tool])
        return None, [], f"nothing to change: write the lines to change ({names})"
    assert not isinstance(item, Competition)
    checked = mod_tools.check_change(session, ml, item, mailed.fields, moderator=sender, now=now)
    if not checked.ok:
        return None, [], _problems(checked)
    payload["values"] = {k: checked.values[k] for k in mailed.fields}
    shown = {k: v for k, v in checked.values.items() if k in mailed.fields}
    return payload, [head, "", "Changed to:",
                     *mod_tools.summary(mailed.tool, shown, ml.timezone)], ""


def _problems(checked: mod_tools.Checked) -> str:
    return "; ".join(f"{k.replace('_', '-').capitalize()}: {p}"
                     for k, p in checked.errors.items())


def request(session: Session, cfg: Config, ml: MailingList, sender: str,
            mailed: Mailed) -> str:
    """Check a mailed request; mail its confirmation to ``sender`` (a moderator). Returns the
    outcome for the reply to the request."""
    assert ml.id is not None
    noun, action = mailed.tool.value, action_of(mailed.verb, mailed.tool)
    if not may_moderate(session, ml, sender):
        audit.record(session, list_id=ml.id, actor=sender, action=f"{action}-refused",
                     target=ml.name, detail="not a moderator (via request)")
        return (f"only moderators of {ml.name} can {mailed.verb} a {noun} by mail, and "
                f"{sender} is not one; nothing was done")
    now = utcnow()
    payload, lines, problem = _check(session, ml, sender, mailed, now)
    if payload is None:
        return f"{problem}; nothing was done" if mailed.unknown or mailed.verb != "add" \
            else f"nothing was done: {problem}"
    recent = session.exec(select(func.count()).select_from(Pending).where(
        Pending.email == sender,
        or_(*[col(Pending.action).like(p + "%") for p in PREFIX.values()]),
        Pending.created_at > now - timedelta(days=1))).one()
    if recent >= MAX_PER_DAY:
        return f"too many requests from {sender} today; try again tomorrow"
    token = links.new_token()
    session.add(Pending(token_hash=links.token_hash(token), list_id=ml.id, email=sender,
                        action=action, payload=json.dumps(payload), created_at=now,
                        expires_at=now + subscriptions.CONFIRM_TTL))
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=sender,
                          sender=info.address(Kind.BOUNCES),
                          payload=confirmation(info, sender, token, mailed.tool, lines,
                                               mailed.verb))
    audit.record(session, list_id=ml.id, actor=sender, action=f"{action}-requested",
                 target=ml.name, detail="via request")
    done = {"add": "created", "change": "changed", "cancel": "cancelled"}[mailed.verb]
    return f"a confirmation request was sent to {sender}; the {noun} is {done} when you confirm"


ASKED = {"add": ("add this {noun} to", "To create it (and announce it to the list)"),
         "change": ("change this {noun} on", "To change it (those coming to an event are told)"),
         "cancel": ("cancel this {noun} on", "To cancel it (those coming to an event are told)")}


def confirmation(info: ListInfo, to: str, token: str, tool: Tool, lines: list[str],
                 verb: str = "add") -> bytes:
    confirm_addr = info.address(Kind.CONFIRM, token)
    asked, to_do = ASKED[verb]
    body = "\n".join([
        f"Someone (hopefully you) asked by mail to {asked.format(noun=tool.value)} "
        f"{info.post_address}:",
        "", *[f"  {line}" if line else "" for line in lines], "",
        f"{to_do}, do any one of these:",
        "  - reply to this message (the subject and text can stay as they are);",
        f"  - send an empty message to {confirm_addr};",
        f"  - open {links.confirm_url(info.web_base_url, token)}", "",
        "If you did not ask for this, ignore this message: nothing happens unless you confirm,",
        "and the request expires in 72 hours."]) + "\n"
    return notices._base(info, to, f"confirm {token}", body, reply_to=confirm_addr,
                         from_addr=confirm_addr).as_bytes()


def tool_of(action: str) -> Tool | None:
    return next((t for t in Tool for v in PREFIX if action_of(v, t) == action), None)


def describe(pending: Pending, list_name: str) -> str:
    """What confirming does, in words ("add the event “Breakfast” to demo"). Pure."""
    tool = tool_of(pending.action)
    values = json.loads(pending.payload or "{}")
    if tool is None:
        return f"an unknown request on {list_name}"
    verb = verb_of(pending.action)
    if verb == "add":
        return f"add the {tool.value} \u201c{_name(tool, values)}\u201d to {list_name}"
    return (f"{verb} {tool.value} {values.get('id')} (\u201c{values.get('name', '')}\u201d) "
            f"on {list_name}")


def _carry_out(session: Session, cfg: Config, ml: MailingList, tool: Tool, verb: str,
               payload: dict[str, Any], moderator: str) -> mod_tools.Created:
    now = utcnow()
    if verb == "add":
        return mod_tools.create(session, cfg, ml, tool, payload, moderator=moderator,
                                actor=moderator, now=now)
    item = mod_tools.open_item(session, ml, tool, int(payload["id"]))
    if item is None:
        return mod_tools.Created(False, f"{ml.name} has no {tool.value} {payload['id']} to "
                                        f"{verb} any more")
    if verb == "cancel":
        return mod_tools.Created(True, mod_tools.cancel(session, cfg, item, actor=moderator,
                                                        now=now), item.id)
    assert not isinstance(item, Competition)
    checked = mod_tools.check_change(session, ml, item, payload.get("values", {}),
                                     moderator=moderator, now=now)
    if not checked.ok:
        return mod_tools.Created(False, _problems(checked))
    return mod_tools.change(session, cfg, ml, item, checked.values, actor=moderator, now=now)


def confirmed(session: Session, cfg: Config, pending: Pending, *,
              via: str) -> subscriptions.Outcome:
    """The moderator's address said yes: carry out the request (``pending`` is already marked
    used)."""
    tool = tool_of(pending.action)
    ml = session.get(MailingList, pending.list_id)
    assert tool is not None and ml is not None and ml.id is not None
    verb = verb_of(pending.action)
    if not may_moderate(session, ml, pending.email):
        return subscriptions.Outcome(False, f"{pending.email} no longer moderates {ml.name}; "
                                            "nothing was done")
    done = _carry_out(session, cfg, ml, tool, verb, json.loads(pending.payload or "{}"),
                      pending.email)
    if done.ok and via != "request":  # by LIST-request the reply to that says it already
        info = list_info(ml, cfg)
        outbox.enqueue_notice(session, list_id=ml.id, recipient=pending.email,
                              sender=info.address(Kind.BOUNCES), payload=notices.notice(
                                  info, pending.email, f"Done: {done.message}",
                                  f"Confirmed: {done.message}.\n").as_bytes())
    return subscriptions.Outcome(done.ok, done.message if done.ok
                                 else f"nothing was done: {done.message}")
