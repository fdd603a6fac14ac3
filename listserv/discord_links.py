"""Linking a Discord account to a person: ``/link email:`` mails a one-time code, ``/verify``
links, ``/unlink`` undoes it. The bot's cog is a thin door over these functions.

Invariants:
- Only members of a bridged list (``[discord.bridges]``) get a code by mail; whatever the
  address, ``request_link`` answers with the same text, so the answer never tells whether an
  address is a member. A request for an unknown address still records a row (with no person),
  so the per-user daily limit counts the same either way.
- Codes are stored hashed, bound to the Discord user who asked (a code mailed for one Discord
  account is useless to another), expire after ``CODE_TTL``, are used once, and a code row is
  dead after ``MAX_ATTEMPTS`` wrong tries.
- A Discord account is linked to at most one person and a person to at most one account;
  linking again replaces the old link. Every link and unlink is audited.
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from sqlalchemy import func
from sqlmodel import Session, col, select

from listserv import audit, outbox
from listserv.addresses import Kind, list_address, normalise_address
from listserv.config import Config
from listserv.models import (
    Address,
    DiscordLink,
    DiscordLinkCode,
    MailingList,
    Person,
    Role,
    Subscription,
    utcnow,
)

CODE_TTL = timedelta(minutes=30)
MAX_ATTEMPTS = 5  # wrong codes per mailed code: 5 guesses at 10**8 is no brute force
MAX_REQUESTS_PER_DAY = 5  # /link requests per Discord user per day: no mail-bombing an address
CODE_DIGITS = 8

# The one answer to /link, whatever the address (see the module's invariants).
LINK_ANSWER = ("If {email} is a member of a list bridged here, a code is on its way to it. "
               "Use /verify with that code within 30 minutes.")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    text: str


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(discord_user_id: str, code: str) -> str:
    """Bound to the user: the same code typed by another account hashes differently."""
    digits = "".join(ch for ch in code if ch.isdigit())
    return hashlib.sha256(f"{discord_user_id}:{digits}".encode()).hexdigest()


def bridged_list_of(session: Session, cfg: Config, email: str) -> tuple[MailingList, Person] | None:
    """A bridged list that ``email`` is a member of (not a non-member entry), and its person."""
    names = list(cfg.bridges)
    if not names:
        return None
    row = session.exec(
        select(MailingList, Person)
        .join(Subscription, col(Subscription.list_id) == col(MailingList.id))
        .join(Address, col(Address.id) == col(Subscription.address_id))
        .join(Person, col(Person.id) == col(Address.person_id))
        .where(Address.email == email, col(MailingList.name).in_(names),
               Subscription.role != Role.NONMEMBER.value)
        .order_by(col(MailingList.name))).first()
    return None if row is None else (row[0], row[1])


def code_mail(cfg: Config, ml: MailingList, to: str, code: str) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)  # CRLF, as every notice goes on the wire
    msg["From"] = formataddr((f"{ml.name} list", list_address(ml.name, cfg.server.domain,
                                                              Kind.REQUEST)))
    msg["To"] = to
    msg["Subject"] = f"Your Discord link code: {code}"
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=cfg.server.domain)
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(
        f"Someone (hopefully you) asked to link a Discord account to {to}.\n\n"
        f"Your code is {code}. In Discord, type /verify code:{code}\n\n"
        "It works once, for 30 minutes, and only for the Discord account that asked.\n"
        "If you did not ask for this, ignore this message: nothing is linked unless the code\n"
        "is used.\n")
    return msg.as_bytes()


def request_link(session: Session, cfg: Config, discord_user_id: str, email: str, *,
                 now: datetime | None = None) -> Outcome:
    """Mail a code to ``email`` when it is a member of a bridged list. Call the outbox
    worker's ``wake`` after the session commits."""
    now = now or utcnow()
    address = normalise_address(email)
    if address is None:
        return Outcome(False, f"{email!r} is not an email address")
    recent = session.exec(select(func.count()).select_from(DiscordLinkCode).where(
        DiscordLinkCode.discord_user_id == discord_user_id,
        DiscordLinkCode.created_at > now - timedelta(days=1))).one()
    if recent >= MAX_REQUESTS_PER_DAY:
        return Outcome(False, "too many link requests from this account today; try tomorrow")
    found = bridged_list_of(session, cfg, address)
    code = new_code()
    person_id = None if found is None else found[1].id
    session.add(DiscordLinkCode(discord_user_id=discord_user_id, person_id=person_id,
                                email=address, code_hash=code_hash(discord_user_id, code),
                                created_at=now, expires_at=now + CODE_TTL))
    if found is not None:
        ml = found[0]
        outbox.enqueue_notice(session, list_id=ml.id, recipient=address,
                              sender=list_address(ml.name, cfg.server.domain, Kind.BOUNCES),
                              payload=code_mail(cfg, ml, address, code))
        audit.record(session, list_id=ml.id, actor=f"discord:{discord_user_id}",
                     action="discord-link-requested", target=address)
    return Outcome(True, LINK_ANSWER.format(email=address))


def verify(session: Session, discord_user_id: str, code: str, *,
           now: datetime | None = None) -> Outcome:
    """Link the account when ``code`` is the newest live code mailed for it."""
    now = now or utcnow()
    row = session.exec(select(DiscordLinkCode).where(
        DiscordLinkCode.discord_user_id == discord_user_id,
        col(DiscordLinkCode.used_at).is_(None),
        DiscordLinkCode.expires_at > now).order_by(col(DiscordLinkCode.id).desc())).first()
    if row is None:
        return Outcome(False, "no code is waiting for this account: ask for one with /link")
    if row.attempts >= MAX_ATTEMPTS:
        return Outcome(False, "too many wrong codes: ask for a new one with /link")
    if row.person_id is None or not hmac.compare_digest(row.code_hash,
                                                        code_hash(discord_user_id, code)):
        row.attempts += 1
        session.add(row)
        left = MAX_ATTEMPTS - row.attempts
        return Outcome(False, f"that code is not right ({left} tries left)")
    row.used_at = now
    session.add(row)
    # One link each way: drop this account's old link and the person's old account.
    for old in session.exec(select(DiscordLink).where(
            (DiscordLink.discord_user_id == discord_user_id)
            | (DiscordLink.person_id == row.person_id))).all():
        session.delete(old)
    session.flush()
    session.add(DiscordLink(discord_user_id=discord_user_id, person_id=row.person_id,
                            linked_at=now))
    audit.record(session, list_id=None, actor=f"discord:{discord_user_id}",
                 action="discord-linked", target=row.email)
    return Outcome(True, f"linked: posts you write in bridged threads go to the list as {row.email}")


def unlink(session: Session, discord_user_id: str) -> Outcome:
    link = session.get(DiscordLink, discord_user_id)
    if link is None:
        return Outcome(False, "this Discord account is not linked")
    session.delete(link)
    audit.record(session, list_id=None, actor=f"discord:{discord_user_id}",
                 action="discord-unlinked", target=str(link.person_id))
    return Outcome(True, "unlinked: your messages in bridged threads are no longer sent to the list")


def linked_person(session: Session, discord_user_id: str) -> int | None:
    link = session.get(DiscordLink, discord_user_id)
    return None if link is None else link.person_id


def linked_address(session: Session, discord_user_id: str, ml: MailingList) -> str | None:
    """The address by which the linked person is a member of ``ml`` (not a non-member entry),
    or None when the account is not linked or its person is not a member."""
    person_id = linked_person(session, discord_user_id)
    if person_id is None:
        return None
    return session.exec(select(Address.email)
                        .join(Subscription, col(Subscription.address_id) == col(Address.id))
                        .where(Address.person_id == person_id, Subscription.list_id == ml.id,
                               Subscription.role != Role.NONMEMBER.value)
                        .order_by(col(Address.email))).first()


def linked_user(session: Session, address: str) -> str | None:
    """The Discord account linked to the person with ``address``, or None."""
    return session.exec(select(DiscordLink.discord_user_id)
                        .join(Address, col(Address.person_id) == col(DiscordLink.person_id))
                        .where(Address.email == address)).first()
