"""Signing in by mail: a one-time link mailed to a member's address, then a signed session.

Invariants:
- A sign-in link is signed with the site secret for one address, names when it was made and a
  random nonce, expires after ``LINK_TTL``, and works once: its use is written to the audit
  log ("signed-in", the nonce in the detail) in the transaction that checks no use is there
  (on PostgreSQL under a transaction advisory lock on the nonce, so two clicks at the same
  moment cannot both pass; SQLite's writers are serialised already). Only the audit rows made
  since the link was issued are read, through the index on ``audit.at``.
- Links go only to addresses that are members of some list, at most ``MAX_LINKS_PER_DAY`` a
  day each; asking for one never tells whether the address is known.
- A session is a signed value (address and expiry, purpose "session"): nothing is stored, so
  it cannot be revoked early; ``SESSION_TTL`` bounds it. A link token cannot serve as a
  session, nor the reverse, nor either as an unsubscribe token (the purpose is signed in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from listserv import audit, notices, outbox
from listserv.addresses import Kind, list_address
from listserv.config import Config
from listserv.lists import list_info
from listserv.models import Address, AuditEntry, MailingList, Role, Subscription

LINK_TTL = timedelta(minutes=30)
SESSION_TTL = timedelta(days=7)
MAX_LINKS_PER_DAY = 5
SIGNED_IN = "signed-in"
REQUESTED = "signin-requested"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, purpose: str, fields: list[str]) -> str:
    body = _b64("\n".join(fields).encode())
    mac = hmac.new(secret, f"{purpose}:{body}".encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def _check(secret: bytes, purpose: str, token: str, count: int) -> list[str] | None:
    body, _, mac = token.partition(".")
    good = hmac.new(secret, f"{purpose}:{body}".encode(), hashlib.sha256).digest()[:16]
    try:
        if not hmac.compare_digest(_unb64(mac), good):
            return None
        fields = _unb64(body).decode().split("\n")
    except (ValueError, UnicodeDecodeError):
        return None
    return fields if len(fields) == count else None


@dataclass(frozen=True)
class LinkClaim:
    email: str
    issued: datetime
    nonce: str


def link_token(secret: bytes, email: str, issued: datetime, nonce: str | None = None) -> str:
    nonce = nonce or secrets.token_hex(12)
    return _sign(secret, "signin", [email, str(int(issued.timestamp())), nonce])


def read_link(secret: bytes, token: str, now: datetime) -> LinkClaim | str:
    """The claim of a genuine, unexpired link token, or what is wrong with it (in words)."""
    fields = _check(secret, "signin", token, 3)
    if fields is None or not fields[1].isdigit():
        return "that sign-in link is not valid; it may have been copied incompletely"
    issued = datetime.fromtimestamp(int(fields[1]), now.tzinfo)
    if now - issued > LINK_TTL:
        return "that sign-in link has expired"
    return LinkClaim(fields[0], issued, fields[2])


def session_value(secret: bytes, email: str, now: datetime) -> str:
    return _sign(secret, "session", [email, str(int((now + SESSION_TTL).timestamp()))])


def read_session(secret: bytes, value: str, now: datetime) -> str | None:
    """The signed-in address, or None (no session, forged, or expired)."""
    fields = _check(secret, "session", value, 2)
    if fields is None or not fields[1].isdigit() or int(fields[1]) < now.timestamp():
        return None
    return fields[0]


def member_lists(session: Session, email: str) -> list[tuple[MailingList, Subscription]]:
    """The lists ``email`` is a member (moderator, owner) of, by name."""
    rows = session.exec(select(MailingList, Subscription)
                        .join(Subscription, col(Subscription.list_id) == col(MailingList.id))
                        .join(Address, col(Address.id) == col(Subscription.address_id))
                        .where(Address.email == email, Subscription.role != Role.NONMEMBER.value)
                        .order_by(col(MailingList.name))).all()
    return [(ml, sub) for ml, sub in rows]


def request_link(session: Session, cfg: Config, email: str, web_base_url: str, now: datetime,
                 secret: bytes) -> bool:
    """Mail ``email`` a sign-in link if it is a member of some list and under its daily limit;
    True when a link was queued (the caller does not tell the asker)."""
    memberships = member_lists(session, email)
    if not memberships:
        return False
    asked = session.exec(select(func.count()).select_from(AuditEntry).where(
        col(AuditEntry.at) >= now - timedelta(days=1), AuditEntry.action == REQUESTED,
        AuditEntry.actor == email)).one()
    if asked >= MAX_LINKS_PER_DAY:
        return False
    ml = memberships[0][0]
    url = f"{web_base_url.rstrip('/')}/signin/{link_token(secret, email, now)}"
    outbox.enqueue_notice(session, list_id=ml.id, recipient=email,
                          sender=list_address(ml.name, cfg.server.domain, Kind.BOUNCES),
                          payload=notices.signin_link(list_info(ml, cfg), email, url,
                                                      int(LINK_TTL.total_seconds() // 60)))
    audit.record(session, list_id=None, actor=email, action=REQUESTED, target=email)
    return True


def use_link(session: Session, claim: LinkClaim) -> str | None:
    """Spend the link: None when it was unused (its use is now recorded), else why not."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(claim.nonce.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    detail = f"link {claim.nonce}"
    used = session.exec(select(func.count()).select_from(AuditEntry).where(
        col(AuditEntry.at) >= claim.issued - timedelta(minutes=1),
        AuditEntry.action == SIGNED_IN, AuditEntry.detail == detail)).one()
    if used:
        return "that sign-in link has already been used"
    audit.record(session, list_id=None, actor=claim.email, action=SIGNED_IN, target=claim.email,
                 detail=detail)
    return None
