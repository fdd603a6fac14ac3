"""Shunted messages: accepted mail whose handling raised, kept as received for a person.

``inbound.store_one`` stores such a message with status "shunted", the error as its reason, and
its recipient addresses (list, kind and token or VERP address) in ``envelope_to``, written and
read back here. ``commonroom queue list --shunted`` shows them, ``queue retry ID`` hands one to
the inbound handling again.

Invariants:
- A retry is one transaction: it either does everything the message asks and removes the
  shunted copy, or changes nothing but the copy's reason (the new error).
- Only rows in the shunted state are retried, so a message is never handled twice this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from listserv import audit
from listserv.accept import Delivery
from listserv.addresses import Destination, Kind
from listserv.config import Config
from listserv.message import parse
from listserv.models import Message, MessageStatus, utcnow
from listserv.store import Store


@dataclass(frozen=True)
class ShuntedItem:
    id: int
    lists: tuple[str, ...]
    sender: str
    subject: str
    reason: str
    received_at: datetime


@dataclass(frozen=True)
class RetryResult:
    ok: bool
    message: str


def envelope_to(destinations: Sequence[Destination]) -> str:
    """"list:kind[:extra], …", enough to handle the message again. Pure."""
    return ", ".join(":".join([d.list_name, d.kind.value] + ([d.extra] if d.extra else []))
                     for d in destinations)


def destinations(text: str) -> list[Destination]:
    """``envelope_to``'s inverse; parts that do not read as a destination are left out. Pure."""
    found = []
    for item in text.split(","):
        name, _, rest = item.strip().partition(":")
        kind, _, extra = rest.partition(":")
        if name and kind in {k.value for k in Kind}:
            found.append(Destination(name, Kind(kind), extra or None))
    return found


def listing(session: Session, list_name: str | None = None) -> list[ShuntedItem]:
    """Shunted messages, oldest first; only those for ``list_name`` when given."""
    rows = session.exec(select(Message).where(Message.status == MessageStatus.SHUNTED.value)
                        .order_by(col(Message.id))).all()
    items = []
    for m in rows:
        assert m.id is not None
        lists = tuple(dict.fromkeys(d.list_name for d in destinations(m.envelope_to)))
        if list_name is None or list_name in lists:
            items.append(ShuntedItem(m.id, lists, m.from_address or m.envelope_from, m.subject,
                                     m.reason, m.received_at))
    return items


def retry(store: Store, cfg: Config, message_pk: int, *, actor: str) -> RetryResult:
    """Handle shunted message ``message_pk`` again (after the cause was fixed)."""
    from listserv import inbound  # inbound writes shunted rows through this module

    try:
        with store.session() as s:
            row = s.get(Message, message_pk)
            if row is None or row.status != MessageStatus.SHUNTED.value:
                return RetryResult(False, f"there is no shunted message number {message_pk}; "
                                          "'commonroom queue list --shunted' shows them")
            dests = destinations(row.envelope_to)
            d = Delivery(envelope_from=row.envelope_from, destinations=dests,
                         raw=row.raw, dmarc_policy=row.dmarc_policy,
                         received_at=row.received_at)
            inbound.handle(s, cfg, d, row.raw, parse(row.raw, domain=cfg.server.domain))
            s.delete(row)
            audit.record(s, list_id=None, actor=actor, action="shunt-retried",
                         target=row.message_id, detail=f"handled again ({row.envelope_to})")
    except Exception as exc:  # the cause is still there: say so and keep the message
        error = f"{type(exc).__name__}: {exc}"
        with store.session() as s:
            row = s.get(Message, message_pk)
            assert row is not None
            row.reason = error[:1000]
            s.add(row)
            audit.record(s, list_id=None, actor=actor, action="shunt-retry-failed",
                         target=row.message_id, detail=error[:500])
        return RetryResult(False, f"shunted message {message_pk} failed again ({error}); "
                                  "it is kept as it was")
    return RetryResult(True, f"shunted message {message_pk} was handled again at "
                             f"{utcnow():%Y-%m-%d %H:%M} UTC")
