"""Copies the smarthost refused, scored as the DSNs they stand for: the outbox's door to bounces.

A 5xx to RCPT or DATA, or a 4xx that was retried until ``give_up_after``, is the same news a
delivery status notification brings later; the outbox records each as a ``Bounce`` (source
"smtp") when it writes the outcome, and hands the batch here in that same transaction (so a
crash loses the outcome and its count together, never the count alone).

Invariants:
- Only a member's copy of a post or digest counts, and only against the member of that list
  whose address it was sent to (recipient + list_id); a notice (a reply, a confirmation, the
  disabled-delivery notice itself) is recorded and never scored.
- A refused probe (its envelope sender carries the member's probe token) disables delivery,
  as a DSN of it would.
- Scoring and acting are ``bounces.count`` and ``bounces.probe_failed``, with the same rules
  (``bounce_score``) as mail to the bounce address; nothing here commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from listserv import bounces
from listserv.addresses import PROBE_PREFIX, Kind, parse_recipient
from listserv.config import Config
from listserv.models import Address, Bounce, MailingList
from listserv.outbox import Undelivered

log = logging.getLogger("commonroom.bounces")


def score(cfg: Config, session: Session, undelivered: Sequence[Undelivered],
          now: datetime) -> int:
    """Score a write-back's undelivered rows in ``session`` (the write-back's transaction);
    how many were scored. The ``OutboxWorker.on_undelivered`` hook, with ``cfg`` bound."""
    wanted = [u for u in undelivered if u.list_id is not None]
    if not wanted:
        return 0
    lists = {ml.id: ml for ml in session.exec(select(MailingList).where(
        col(MailingList.id).in_({u.list_id for u in wanted}))).all()}
    rows = {b.id: b for b in session.exec(select(Bounce).where(
        col(Bounce.id).in_([u.bounce_id for u in wanted]))).all()}
    scored = 0
    for u in wanted:
        ml, row = lists.get(u.list_id), rows.get(u.bounce_id)
        if ml is None or row is None:
            continue
        if u.copy:
            done = bounces.count(session, cfg, ml, row, now)
        else:
            token = _probe_token(cfg, ml, u.sender)
            sub = bounces.probe_subscription(session, ml, token)
            if sub is None or _email(session, sub.address_id) != u.recipient:
                continue  # an ordinary notice
            done = bounces.probe_failed(session, cfg, ml, sub, row, now)
        scored += 1
        log.info("smtp bounce: %s", done, extra={"list": ml.name, "member": u.recipient,
                                                  "status": u.status})
    return scored


def _probe_token(cfg: Config, ml: MailingList, sender: str) -> str:
    dest = parse_recipient(sender, cfg.server.domain, lambda name: name == ml.name)
    extra = dest.extra or "" if dest is not None and dest.kind is Kind.BOUNCES else ""
    return extra[len(PROBE_PREFIX):] if extra.startswith(PROBE_PREFIX) else ""


def _email(session: Session, address_id: int) -> str:
    return session.exec(select(Address.email).where(Address.id == address_id)).one()
