"""``/subscribe email:`` from Discord: the same double opt-in as by mail
(``subscriptions.request`` with via "discord"), behind a per-Discord-user daily limit.

Invariants:
- The answer is the same whatever became of the request (sent, already a member, banned, too
  many confirmations for that address): nobody learns from Discord who is subscribed.
- At most ``MAX_REQUESTS_PER_DAY`` requests per Discord account per day, counted from the audit
  entries this module writes (like ``/link``'s limit in ``discord_links``), so one account cannot
  spray confirmation mails over many addresses; the per-address limit of ``subscriptions``
  still applies on top.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from listserv import audit, subscriptions
from listserv.addresses import normalise_address
from listserv.config import Config
from listserv.discord_links import Outcome
from listserv.models import AuditEntry, MailingList, utcnow

MAX_REQUESTS_PER_DAY = 5
ACTION = "discord-subscribe-requested"

# The one answer, whatever the address (see the module's invariants).
ANSWER = ("If {email} can join {list}, a confirmation request is on its way to it: follow the "
          "link in it (within 72 hours) to join.")


def request(session: Session, cfg: Config, ml: MailingList, discord_user_id: str, email: str, *,
            now: datetime | None = None) -> Outcome:
    """Ask ``email`` to confirm joining ``ml``. Call the outbox worker's ``wake`` after the
    session commits."""
    now = now or utcnow()
    address = normalise_address(email)
    if address is None:
        return Outcome(False, f"{email!r} is not an email address")
    actor = f"discord:{discord_user_id}"
    recent = session.exec(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.actor == actor, AuditEntry.action == ACTION,
        AuditEntry.at > now - timedelta(days=1))).one()
    if recent >= MAX_REQUESTS_PER_DAY:
        return Outcome(False, "too many subscribe requests from this account today; try tomorrow")
    audit.record(session, list_id=ml.id, actor=actor, action=ACTION, target=address)
    subscriptions.request(session, cfg, ml, address, "subscribe", via="discord")
    return Outcome(True, ANSWER.format(email=address, list=ml.name))
