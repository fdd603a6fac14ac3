"""The audit log: who did what to which list, when and why. Append-only."""

from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlmodel import Session, col, select

from listserv.models import AuditEntry, utcnow

log = logging.getLogger("commonroom.audit")


def record(session: Session, *, list_id: int | None, actor: str, action: str, target: str = "",
           detail: str = "") -> None:
    # A core INSERT, at once: an ORM object cost ~80 µs to build and its flush more, once per
    # post (issue 12). Rows keep the order of the calls, as the flush kept the order of adds.
    session.execute(_INSERT, {"at": utcnow(), "list_id": list_id, "actor": actor,
                              "action": action, "target": target, "detail": detail})
    log.info("%s %s %s", actor, action, target,
             extra={"list_id": list_id, "actor": actor, "action": action, "target": target})


_INSERT = insert(AuditEntry.__table__)  # type: ignore[attr-defined]


def entries(session: Session, list_id: int | None, *, limit: int = 50,
            action_prefix: str = "") -> list[AuditEntry]:
    """The newest ``limit`` entries for a list (site-wide ones when ``list_id`` is None), oldest first."""
    query = select(AuditEntry).where(AuditEntry.list_id == list_id if list_id is not None
                                     else col(AuditEntry.list_id).is_(None))
    if action_prefix:
        query = query.where(col(AuditEntry.action).startswith(action_prefix))
    rows = session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit)).all()
    return list(reversed(rows))
