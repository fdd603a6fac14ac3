"""One accepted SMTP transaction: store it and do what its recipient addresses ask.

Invariants:
- Everything a message causes (its rows, thread, outbox entries, notices, audit) commits in one
  transaction, the one that deletes its row from the inbound queue (``inbound_queue``; the
  SMTP server answered 250 when that row was committed).
- If handling fails with a bug, its savepoint is rolled back and the raw message is stored
  instead as "shunted" with the error, so an accepted message is never lost; a person can
  look at it (``commonroom queue list --shunted``) and have it handled again
  (``commonroom queue retry ID``, ``listserv.shunt``).
- Automatic mail (auto-replies, bounces, loops) is never answered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sqlmodel import Session, col, select

from listserv import (
    audit,
    bounces,
    moderation,
    notices,
    outbox,
    posting,
    requests,
    shunt,
    subscriptions,
)
from listserv.addresses import PROBE_PREFIX, Destination, Kind
from listserv.config import Config
from listserv.lists import find, list_info
from listserv.message import ParsedMessage, add_date, first_text, parse, set_message_id
from listserv.models import (
    Address,
    MailingList,
    Message,
    MessageStatus,
    Role,
    Subscription,
    utcnow,
)
from listserv.store import Store, after_commit, savepoint

log = logging.getLogger("commonroom.inbound")


@dataclass(frozen=True)
class Delivery:
    """What the SMTP door hands over after DATA."""

    envelope_from: str
    destinations: Sequence[Destination]
    raw: bytes
    dmarc_policy: str = ""


def _store_admin(session: Session, ml: MailingList, d: Delivery, parsed: ParsedMessage,
                 raw: bytes, reason: str) -> None:
    """Keep administrivia (requests, confirmations, bounces) as received, with what we did."""
    session.add(Message(list_id=ml.id, message_id=parsed.message_id,
                        envelope_from=d.envelope_from, envelope_to=f"{ml.name} (admin)",
                        from_address=parsed.from_address or "", from_name=parsed.from_name,
                        subject=parsed.subject, date=parsed.date, size=parsed.size,
                        status=MessageStatus.ADMIN.value, reason=reason, raw=raw))


def _handle_one(session: Session, cfg: Config, d: Delivery, dest: Destination, raw: bytes,
                parsed: ParsedMessage) -> None:
    ml = find(session, dest.list_name)
    if ml is None:  # deleted between RCPT and DATA: keep the message, say why
        raise LookupError(f"list {dest.list_name} no longer exists")
    sender = subscriptions.canonical(parsed.from_address or d.envelope_from or "") or ""
    automatic = posting.automatic_mail(parsed, d.envelope_from)
    if dest.kind is Kind.POST:
        posting.post(session, cfg, ml, raw, parsed, envelope_from=d.envelope_from,
                     dmarc_policy=d.dmarc_policy)
        return
    if dest.kind is Kind.BOUNCES:
        extra = dest.extra or ""
        who = extra if extra.startswith(PROBE_PREFIX) else subscriptions.canonical(extra) or ""
        done = bounces.handle(session, cfg, ml, raw, who, utcnow())
        _store_admin(session, ml, d, parsed, raw, done[:1000])
        return
    if dest.kind is Kind.OWNER:  # feedback loops often report to the owner address
        complained = bounces.owner_complaint(session, cfg, ml, raw, utcnow())
        if complained is not None:
            _store_admin(session, ml, d, parsed, raw, complained)
            return
    if automatic:
        _store_admin(session, ml, d, parsed, raw,
                     f"{dest.kind.value}: automatic mail ({automatic}), not answered")
        return
    if dest.kind is Kind.JOIN or dest.kind is Kind.LEAVE:
        action = "subscribe" if dest.kind is Kind.JOIN else "unsubscribe"
        outcome = subscriptions.request(session, cfg, ml, sender, action,
                                        display_name=parsed.from_name, via=dest.kind.value)
        _store_admin(session, ml, d, parsed, raw, f"{dest.kind.value}: {outcome.message}")
    elif dest.kind is Kind.CONFIRM:
        # One address form, two kinds of token: a pending (un)subscription, or a held post
        # whose notice a moderator is answering.
        held = moderation.held_for_token(session, dest.extra or "")
        if held is not None:
            result = moderation.act_by_reply(session, cfg, held, sender, first_text(raw))
            _store_admin(session, ml, d, parsed, raw, f"moderation reply: {result.message}")
        else:
            outcome = subscriptions.confirm(session, cfg, dest.extra or "", via="confirm address")
            _store_admin(session, ml, d, parsed, raw, f"confirm: {outcome.message}")
    elif dest.kind is Kind.REQUEST:
        results = requests.handle(session, cfg, ml, sender, parsed.subject, first_text(raw))
        _store_admin(session, ml, d, parsed, raw,
                     f"request: {len(results)} command(s) understood")
    elif dest.kind is Kind.OWNER:
        info = list_info(ml, cfg)
        assert ml.id is not None
        for mod in subscriptions.moderators(session, ml.id):
            outbox.enqueue_notice(session, list_id=ml.id, recipient=mod,
                                  sender=info.address(Kind.BOUNCES),
                                  payload=notices.to_owners(info, mod, raw, sender))
        _store_admin(session, ml, d, parsed, raw, "owner: passed to the moderators")


def handle(session: Session, cfg: Config, d: Delivery, raw: bytes,
           parsed: ParsedMessage) -> None:
    """Do what each recipient address asks, in the caller's transaction."""
    for dest in d.destinations:
        _handle_one(session, cfg, d, dest, raw, parsed)


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
        received = utcnow().replace(microsecond=0)
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


def urgent(p: Prepared, is_member: Callable[[str, tuple[str, ...]], bool]) -> bool:
    """``is_urgent`` for a prepared delivery (``is_member``: a ``MemberHint``)."""
    kinds = [d.kind for d in p.delivery.destinations]
    if is_urgent(kinds, False):
        return True
    posts = tuple(sorted({d.list_name for d in p.delivery.destinations if d.kind is Kind.POST}))
    sender = subscriptions.canonical(p.parsed.from_address or p.delivery.envelope_from or "")
    return bool(posts and sender and is_urgent(kinds, is_member(sender, posts)))


def store_one(session: Session, cfg: Config, p: Prepared) -> bool:
    """Handle one prepared message in the caller's transaction, in a savepoint of its own; if
    handling raises, roll back just that and store the message as shunted. True if handled.
    If shunting raises too, nothing of the message is left in the transaction."""
    d, raw, parsed = p.delivery, p.raw, p.parsed
    try:
        with savepoint(session):
            handle(session, cfg, d, raw, parsed)
        return True
    except Exception as exc:  # a bug must not lose an accepted message: shunt it
        error = f"{type(exc).__name__}: {exc}"
        with session.begin_nested():
            session.add(Message(message_id=parsed.message_id, envelope_from=d.envelope_from,
                                envelope_to=shunt.envelope_to(d.destinations),
                                from_address=parsed.from_address or "",
                                subject=parsed.subject, size=parsed.size,
                                status=MessageStatus.SHUNTED.value,
                                reason=error[:1000], raw=raw))
            audit.record(session, list_id=None, actor="server", action="shunted",
                         target=parsed.message_id, detail=error[:500])
        saved = exc  # the name "exc" is cleared when the except block ends
        after_commit(session, lambda: log.error(
            "handling %s failed; shunted", parsed.message_id, exc_info=saved,
            extra={"message_id": parsed.message_id, "envelope_from": d.envelope_from}))
        return False

