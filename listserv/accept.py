"""Accepting a message at the SMTP door, before anything is stored: the delivery as received,
completed as an MTA would (Message-ID, Date), and whether a person is waiting on it.

Kept apart from ``inbound`` (the handling) so the SMTP process (``listserv.door``) imports
no more than accepting needs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlmodel import col, select

from listserv import subscriptions
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.message import ParsedMessage, add_date, parse, set_message_id
from listserv.models import Address, MailingList, Role, Subscription, utcnow
from listserv.store import Store


@dataclass(frozen=True)
class Delivery:
    """What the SMTP door hands over after DATA."""

    envelope_from: str
    destinations: Sequence[Destination]
    raw: bytes
    dmarc_policy: str = ""
    # When the door took it (its 250 follows): the message's ``received_at``, even if the
    # pipeline handles it later (a rate limit, a competition's closing time count from here).
    received_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Prepared:
    """A delivery made ready for the store outside the write lock: parsed once, with the
    Message-ID and Date an MTA adds when they are missing."""

    delivery: Delivery
    raw: bytes
    parsed: ParsedMessage


def prepare(cfg: Config, d: Delivery) -> Prepared:
    """Parse and complete a delivery. Pure (no store): runs before the writer takes it."""
    parsed = parse(d.raw, domain=cfg.server.domain)
    raw = set_message_id(d.raw, parsed.message_id) if parsed.message_id_generated else d.raw
    if not parsed.get_all("Date"):  # RFC 5322 requires one: the time we received it, as an MTA
        received = d.received_at.replace(microsecond=0)
        raw = add_date(raw, received)
        parsed = replace(parsed, date=received)
    return Prepared(d, raw, parsed)


# Mail a person is waiting on: answered ahead of a flood of posts that will only be held.
URGENT_KINDS = frozenset({Kind.JOIN, Kind.LEAVE, Kind.CONFIRM, Kind.REQUEST, Kind.OWNER})


def is_urgent(kinds: Sequence[Kind], sender_is_member: bool) -> bool:
    """Whether a delivery goes ahead in the writer's queue: a request or reply from a person,
    or a post from a member of the list. Pure."""
    return any(k in URGENT_KINDS for k in kinds) or (
        sender_is_member and any(k is Kind.POST for k in kinds))


class MemberHint:
    """Whether an address is a member of one of some lists, remembered for ``ttl`` seconds: it
    only decides a place in the writer's queue (``is_urgent``), so an answer a minute old costs
    nothing else, and a flood's repeat senders cost no query each."""

    def __init__(self, store: Store, *, ttl: float = 60.0, size: int = 10_000) -> None:
        self.store, self.ttl, self.size = store, ttl, size
        self._known: dict[tuple[str, tuple[str, ...]], tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def remembered(self, sender: str, lists: tuple[str, ...]) -> bool:
        """The remembered answer, without a query; KeyError when there is none (or it is old)."""
        with self._lock:
            known = self._known.get((sender, lists))
        if known is None or time.monotonic() - known[1] >= self.ttl:
            raise KeyError(sender)
        return known[0]

    def __call__(self, sender: str, lists: tuple[str, ...]) -> bool:
        with contextlib.suppress(KeyError):
            return self.remembered(sender, lists)
        now = time.monotonic()
        with self.store.read_session() as s:
            member = s.exec(select(Subscription.id).join(
                Address, col(Address.id) == col(Subscription.address_id)).join(
                MailingList, col(MailingList.id) == col(Subscription.list_id)).where(
                Address.email == sender, col(MailingList.name).in_(lists),
                Subscription.role != Role.NONMEMBER.value).limit(1)).first() is not None
        with self._lock:
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[(sender, lists)] = (member, now)
        return member


def prompt(p: Prepared) -> bool:
    """Whether a person waits on this delivery (a request, a confirmation, mail to the
    owners): the pipeline never holds it back during a burst. Pure."""
    return any(d.kind in URGENT_KINDS for d in p.delivery.destinations)


def urgent(p: Prepared, is_member: Callable[[str, tuple[str, ...]], bool]) -> bool:
    """``is_urgent`` for a prepared delivery (``is_member``: a ``MemberHint``)."""
    kinds = [d.kind for d in p.delivery.destinations]
    if is_urgent(kinds, False):
        return True
    posts = tuple(sorted({d.list_name for d in p.delivery.destinations if d.kind is Kind.POST}))
    sender = subscriptions.canonical(p.parsed.from_address or p.delivery.envelope_from or "")
    return bool(posts and sender and is_urgent(kinds, is_member(sender, posts)))
