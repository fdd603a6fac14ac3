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

import logging
from collections.abc import Callable

from sqlmodel import Session

from listserv import (
    audit,
    bounces,
    contention,
    moderation,
    notices,
    outbox,
    posting,
    requests,
    shunt,
    subscriptions,
    write_behind,
)
from listserv.accept import Delivery, Prepared
from listserv.addresses import PROBE_PREFIX, Destination, Kind
from listserv.config import Config
from listserv.lists import find, list_info
from listserv.message import ParsedMessage, first_text
from listserv.models import (
    MailingList,
    Message,
    MessageStatus,
    utcnow,
)
from listserv.store import after_commit, savepoint

log = logging.getLogger("commonroom.inbound")


def _store_admin(session: Session, ml: MailingList, d: Delivery, parsed: ParsedMessage,
                 raw: bytes, reason: str) -> None:
    """Keep administrivia (requests, confirmations, bounces) as received, with what we did."""
    session.add(Message(list_id=ml.id, message_id=parsed.message_id,
                        envelope_from=d.envelope_from, envelope_to=f"{ml.name} (admin)",
                        from_address=parsed.from_address or "", from_name=parsed.from_name,
                        subject=parsed.subject, date=parsed.date, size=parsed.size,
                        received_at=d.received_at, status=MessageStatus.ADMIN.value, reason=reason, raw=raw))


def _handle_one(session: Session, cfg: Config, d: Delivery, dest: Destination, raw: bytes,
                parsed: ParsedMessage) -> None:
    ml = find(session, dest.list_name)
    if ml is None:  # deleted between RCPT and DATA: keep the message, say why
        raise LookupError(f"list {dest.list_name} no longer exists")
    sender = subscriptions.canonical(parsed.from_address or d.envelope_from or "") or ""
    automatic = posting.automatic_mail(parsed, d.envelope_from)
    if dest.kind is Kind.POST:
        posting.post(session, cfg, ml, raw, parsed, envelope_from=d.envelope_from,
                     dmarc_policy=d.dmarc_policy, received_at=d.received_at)
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


def store_one(session: Session, cfg: Config, p: Prepared,
              finish: Callable[[Session], None] | None = None) -> bool:
    """Handle one prepared message in the caller's transaction, in a savepoint of its own; if
    handling raises, roll back just that and store the message as shunted. True if handled.
    If shunting raises too, nothing of the message is left in the transaction. ``finish``: a
    write that goes with the message whichever way it went (the inbound queue's delete), in
    the same savepoint and write-behind scope as the rest (one round trip, on PostgreSQL)."""
    d, raw, parsed = p.delivery, p.raw, p.parsed
    try:
        # The post's last writes (thread, search text, copies, audit) read nothing back: on
        # PostgreSQL they go to the server together at the end (listserv/write_behind.py).
        with savepoint(session), write_behind.scope(session):
            handle(session, cfg, d, raw, parsed)
            if finish is not None:
                finish(session)
        return True
    except (contention.Contended, contention.Gone):
        raise  # Contended: its runner runs it again, first in a new transaction
    except Exception as exc:  # a bug must not lose an accepted message: shunt it
        if contention.may_step_aside(session) and contention.is_race(exc):
            raise contention.Contended(f"{type(exc).__name__}: {exc}") from exc
        error = f"{type(exc).__name__}: {exc}"
        with session.begin_nested(), write_behind.scope(session):
            session.add(Message(message_id=parsed.message_id, envelope_from=d.envelope_from,
                                envelope_to=shunt.envelope_to(d.destinations),
                                from_address=parsed.from_address or "",
                                subject=parsed.subject, size=parsed.size,
                                received_at=d.received_at, status=MessageStatus.SHUNTED.value,
                                reason=error[:1000], raw=raw))
            audit.record(session, list_id=None, actor="server", action="shunted",
                         target=parsed.message_id, detail=error[:500])
            if finish is not None:
                finish(session)
        saved = exc  # the name "exc" is cleared when the except block ends
        after_commit(session, lambda: log.error(
            "handling %s failed; shunted", parsed.message_id, exc_info=saved,
            extra={"message_id": parsed.message_id, "envelope_from": d.envelope_from}))
        return False

