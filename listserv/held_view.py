"""What a moderator sees of the queue outside mail: the lists an address moderates, and one held
post as data (headers, text, reason, rule, the policy evidence, how it was resolved).

Pure reads; the actions are ``listserv.moderation.act``'s. Doors (the web pages) render these
values and must escape every string: they come from mail.

Invariants:
- "May moderate" means a moderator or owner subscription on that very list
  (``subscriptions.moderators``, the same test replies to held notices pass); nothing else.
- The text shown is ``bodytext.first_text`` of the stored raw mail, the same words the policy
  and the notices read; headers are decoded (RFC 2047) but otherwise as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.policy import compat32

from sqlmodel import Session, col, select

from listserv import participation, subscriptions
from listserv.bodytext import first_text
from listserv.message import decode_header_text
from listserv.models import Address, Held, MailingList, Message, Role, Subscription

SHOWN_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID")


@dataclass(frozen=True)
class HeldPost:
    id: int
    list_id: int
    list_name: str
    sender: str
    subject: str
    rule: str
    reason: str
    held_at: datetime
    headers: tuple[tuple[str, str], ...]
    text: str
    policy: str  # the participation policy's evidence as readable lines, or ""
    resolution: str  # "" while waiting; else accept | reject | discard
    resolved_by: str
    resolved_at: datetime | None


def moderated_lists(session: Session, email: str) -> list[MailingList]:
    """The lists ``email`` is a moderator or owner of, by name."""
    rows = session.exec(select(MailingList)
                        .join(Subscription, col(Subscription.list_id) == col(MailingList.id))
                        .join(Address, col(Address.id) == col(Subscription.address_id))
                        .where(Address.email == email,
                               col(Subscription.role).in_([Role.MODERATOR.value, Role.OWNER.value]))
                        .order_by(col(MailingList.name))).all()
    return list(rows)


def may_moderate(session: Session, list_id: int, email: str) -> bool:
    return email in subscriptions.moderators(session, list_id)


def held_list(session: Session, held_id: int) -> MailingList | None:
    """The list held post ``held_id`` belongs to (None: no such held post)."""
    return session.exec(select(MailingList).join(Held, col(Held.list_id) == col(MailingList.id))
                        .where(Held.id == held_id)).first()


def headers_of(raw: bytes) -> tuple[tuple[str, str], ...]:
    """The headers a moderator needs, decoded, in ``SHOWN_HEADERS`` order. Pure."""
    msg = message_from_bytes(raw, policy=compat32)
    shown: list[tuple[str, str]] = []
    for name in SHOWN_HEADERS:
        for value in msg.get_all(name) or []:
            shown.append((name, decode_header_text(" ".join(str(value).split()))))
    return tuple(shown)


def held_post(session: Session, held_id: int) -> HeldPost | None:
    row = session.exec(select(Held, Message, MailingList)
                       .join(Message, col(Message.id) == col(Held.message_pk))
                       .join(MailingList, col(MailingList.id) == col(Held.list_id))
                       .where(Held.id == held_id)).first()
    if row is None:
        return None
    held, msg, ml = row
    assert held.id is not None and ml.id is not None
    return HeldPost(id=held.id, list_id=ml.id, list_name=ml.name, sender=msg.from_address,
                    subject=msg.subject, rule=held.rule, reason=held.reason,
                    held_at=held.held_at, headers=headers_of(msg.raw),
                    text=first_text(msg.raw),
                    policy=participation.describe(msg.policy) if msg.policy else "",
                    resolution=held.resolution if held.resolved_at else "",
                    resolved_by=held.resolved_by, resolved_at=held.resolved_at)
