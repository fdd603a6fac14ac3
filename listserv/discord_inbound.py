"""Posts written in a bridged Discord thread, into the list: ``compose`` builds the mail a
message becomes (pure), ``submit`` runs it through the same posting pipeline as email.

Invariants:
- A Discord message becomes at most one stored post: ``discord_post`` is keyed by the Discord
  message id and checked first, so a gateway event delivered twice (a RESUME replay) does
  nothing the second time.
- Only a linked person's messages reach the list, as that person (the name in the store and the
  address subscribed to the list); membership, bans, rate limits and the participation policy
  apply because it is ``posting.post``, in the caller's transaction.
- Nothing a Discord user types reaches a mail header unencoded: names and subjects are cleaned
  of line breaks and control characters (``names.clean``) and written as RFC 2047 encoded words
  whenever they are not plain ASCII or contain "=?", so no decoder reads them as headers or as
  encoded words of their own.
- A reply joins its list thread (In-Reply-To the latest accepted post, References the chain
  from the root, trimmed as Netnews agents trim); a new Discord thread becomes a new list thread
  and, once a post of it is accepted, the two are recorded as one (``discord_thread``).
"""

from __future__ import annotations

import email.policy
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message as MailMessage
from email.utils import format_datetime, make_msgid

from sqlmodel import Session, col, select

from listserv import discord_bridge, discord_links, lists, names, posting
from listserv.addresses import list_address
from listserv.config import Config
from listserv.message import parse
from listserv.models import (
    Action,
    Address,
    DiscordPost,
    DiscordThread,
    MailingList,
    Message,
    Person,
    Role,
    Subscription,
    Thread,
    utcnow,
)

# References kept on a reply: the root and the nearest ancestors (RFC 5537 3.4.4 trims so).
MAX_REFERENCES = 20
WIRE = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
_REPLY = re.compile(r"^\s*re\s*:", re.IGNORECASE)

LINK_HOW = ("Link your Discord account to your membership first: type `/link email:` with the "
            "address you are subscribed with, then `/verify code:` with the code mailed to you.")


@dataclass(frozen=True)
class DiscordMessage:
    """What the bot read from one MESSAGE_CREATE in a thread (ids are snowflakes as text)."""

    user_id: str
    message_id: str
    thread_id: str
    channel_id: str  # the thread's parent: the bridged channel
    thread_name: str
    content: str
    attachments: tuple[str, ...] = ()  # URLs
    author_name: str = ""  # Discord's display name, used only if the person has no name


class Result(enum.StrEnum):
    ACCEPTED = "accepted"
    HELD = "held"
    REJECTED = "rejected"
    DISCARDED = "discarded"
    NOT_LINKED = "not-linked"
    NOT_BRIDGED = "not-bridged"
    EMPTY = "empty"  # nothing to send (a sticker, an embed-only message)
    DUPLICATE = "duplicate"  # this Discord message was handled already


RESULT_FOR = {Action.ACCEPT: Result.ACCEPTED, Action.HOLD: Result.HELD,
              Action.REJECT: Result.REJECTED, Action.DISCARD: Result.DISCARDED}


@dataclass(frozen=True)
class Outcome:
    result: Result
    text: str = ""  # for the author, privately; "" when there is nothing to tell
    list_name: str = ""
    message_pk: int | None = None
    held_id: int | None = None

    @property
    def remove(self) -> bool:
        """The message must leave the Discord thread: it did not go to the list as written."""
        return self.result in (Result.HELD, Result.REJECTED, Result.DISCARDED)


@dataclass(frozen=True)
class Placement:
    """Where in the list a post goes: its subject and its place in a thread."""

    subject: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    thread_id: int | None = None  # the list thread already tied to the Discord thread


def header_text(text: str) -> str | Header:
    """``text`` as a header value no decoder can read as more than text."""
    text = names.clean(text)
    return text if text.isascii() and "=?" not in text else Header(text, "utf-8")


def body_text(content: str, attachments: Sequence[str]) -> str:
    """The message as written (Discord markdown is plain text), attachments as their URLs."""
    text = content.replace("\r\n", "\n").strip("\n")
    if attachments:
        text += ("\n\n" if text else "") + "Attachments:\n" + "\n".join(attachments)
    return text + "\n"


def trimmed(refs: Sequence[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(refs))
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1):]
    return tuple(unique)


def compose(dm: DiscordMessage, *, name: str, address: str, post_address: str, domain: str,
            placement: Placement, now: datetime, message_id: str | None = None) -> bytes:
    """The mail ``dm`` becomes: from the person, to the list, in its thread (CRLF, utf-8)."""
    msg = MailMessage(policy=WIRE)
    msg["From"] = names.mailbox(name, address)
    msg["To"] = post_address
    msg["Subject"] = header_text(placement.subject)  # type: ignore[assignment]
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id or make_msgid(domain=domain)
    if placement.in_reply_to:
        msg["In-Reply-To"] = f"<{placement.in_reply_to}>"
    if placement.references:
        msg["References"] = " ".join(f"<{r}>" for r in placement.references)
    msg["X-Commonroom-Discord"] = (f"message={_digits(dm.message_id)}; "
                                   f"thread={_digits(dm.thread_id)}; user={_digits(dm.user_id)}")
    charset = Charset("utf-8")
    charset.body_encoding = QP
    msg.set_payload(body_text(dm.content, dm.attachments), charset)
    return msg.as_bytes(policy=WIRE)


def _digits(snowflake: str) -> str:
    return "".join(ch for ch in snowflake if ch.isdigit())[:20]


def list_for_channel(cfg: Config, channel_id: str) -> str | None:
    return next((name for name, channel in sorted(cfg.bridges.items())
                 if channel == channel_id), None)


def address_for(session: Session, ml: MailingList, person_id: int) -> str | None:
    """The person's address subscribed to ``ml`` (a member's before a non-member entry's), or
    else their first address: the rules then see a non-member, as they would by email."""
    rows = session.exec(select(Address.email, Subscription.role)
                        .join(Subscription, (col(Subscription.address_id) == col(Address.id))
                              & (col(Subscription.list_id) == ml.id), isouter=True)
                        .where(Address.person_id == person_id)
                        .order_by(col(Address.id))).all()
    ranked = sorted(rows, key=lambda r: (r[1] is None, r[1] == Role.NONMEMBER.value))
    return ranked[0][0] if ranked else None


def _tied_thread(session: Session, ml: MailingList, discord_thread_id: str) -> int | None:
    """The list thread of a Discord thread: recorded, or that of an earlier post from it which
    went out (a new thread whose first post was held, then approved)."""
    tie = discord_bridge.list_thread_for(session, discord_thread_id)
    if tie is not None:
        return tie.thread_id
    return session.exec(
        select(Message.thread_id).join(DiscordPost, col(DiscordPost.message_pk) == col(Message.id))
        .where(DiscordPost.discord_thread_id == discord_thread_id, Message.list_id == ml.id,
               col(Message.thread_id).is_not(None), col(Message.accepted_at).is_not(None))
        .order_by(col(Message.received_at), col(Message.id))).first()


def placement(session: Session, cfg: Config, ml: MailingList, dm: DiscordMessage) -> Placement:
    thread_id = _tied_thread(session, ml, dm.thread_id)
    new = Placement(subject=names.clean(dm.thread_name) or "(a Discord thread)")
    thread = session.get(Thread, thread_id) if thread_id is not None else None
    if thread is None:
        return new
    accepted = (select(Message).where(Message.thread_id == thread.id,
                                      col(Message.accepted_at).is_not(None)))
    parent = session.exec(accepted.order_by(col(Message.accepted_at).desc(),
                                            col(Message.id).desc())).first()
    # The first to arrive: ids are not in arrival order across processes (listserv/ids_ahead.py).
    root = session.exec(accepted.order_by(col(Message.received_at), col(Message.id))).first()
    subject = names.clean(thread.subject) or new.subject
    subject = subject if _REPLY.match(subject) else f"Re: {subject}"
    if parent is None or root is None:
        return Placement(subject, thread_id=thread.id)
    chain = [root.message_id, *parse(parent.raw, domain=cfg.server.domain).references,
             parent.message_id]
    return Placement(subject, parent.message_id, trimmed(chain), thread.id)


def _told(result: Result, list_name: str, thread_name: str, reason: str) -> str:
    where = f"Your message in “{names.clean(thread_name)}”"
    if result is Result.HELD:
        return (f"{where} is held for the moderators of the {list_name} list: {reason}. It has "
                "been taken out of the thread for now. The moderators will look at it; if they "
                "approve it, it is sent to the list and posted back in the thread with your name.")
    if result is Result.REJECTED:
        return (f"{where} was not sent to the {list_name} list: {reason}. It has been taken out "
                "of the thread.")
    if result is Result.DISCARDED:
        return (f"{where} was not sent to the {list_name} list ({reason}) and has been taken "
                "out of the thread.")
    return ""


def submit(session: Session, cfg: Config, dm: DiscordMessage, *,
           now: datetime | None = None) -> Outcome:
    """Post ``dm`` to its bridged list as its linked author, in the caller's transaction.
    Call the outbox worker's ``wake`` after the session commits."""
    if session.get(DiscordPost, dm.message_id) is not None:
        return Outcome(Result.DUPLICATE)
    list_name = list_for_channel(cfg, dm.channel_id)
    ml = lists.find(session, list_name) if list_name else None
    if ml is None:
        return Outcome(Result.NOT_BRIDGED)
    if not dm.content.strip() and not dm.attachments:
        return Outcome(Result.EMPTY, list_name=ml.name)
    person_id = discord_links.linked_person(session, dm.user_id)
    address = address_for(session, ml, person_id) if person_id is not None else None
    if person_id is None or address is None:
        return Outcome(Result.NOT_LINKED, f"Your message was not sent to the {ml.name} mailing "
                       f"list. {LINK_HOW}", ml.name)
    person = session.get(Person, person_id)
    name = (person.display_name if person else "") or names.clean(dm.author_name)
    place = placement(session, cfg, ml, dm)
    raw = compose(dm, name=name, address=address,
                  post_address=list_address(ml.name, cfg.server.domain),
                  domain=cfg.server.domain, placement=place, now=now or utcnow())
    parsed = parse(raw, domain=cfg.server.domain)
    posted = posting.post(session, cfg, ml, raw, parsed, envelope_from=address,
                          from_discord=True)
    session.add(DiscordPost(discord_message_id=dm.message_id, message_pk=posted.message_pk,
                            discord_thread_id=dm.thread_id, discord_user_id=dm.user_id))
    result = RESULT_FOR[posted.decision.action]
    if result is Result.ACCEPTED and place.thread_id is None:
        _tie(session, posted.message_pk, dm)
    session.flush()
    return Outcome(result, _told(result, ml.name, dm.thread_name, posted.decision.reason),
                   ml.name, posted.message_pk, posted.held_id)


def _tie(session: Session, message_pk: int, dm: DiscordMessage) -> None:
    """Record the new Discord thread as the accepted post's list thread, unless either is tied
    already (the subject fallback may have put the post in a thread another one carries)."""
    msg = session.get(Message, message_pk)
    if msg is None or msg.thread_id is None:
        return
    if discord_bridge.thread_for(session, msg.thread_id) is not None:
        return
    if discord_bridge.list_thread_for(session, dm.thread_id) is not None:
        return
    session.add(DiscordThread(thread_id=msg.thread_id, discord_thread_id=dm.thread_id,
                              channel_id=dm.channel_id))
