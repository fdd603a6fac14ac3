"""The audit log: who did what to which list, when and why. Append-only."""

from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlmodel import Session, col, select

from listserv import write_behind
from listserv.models import AuditEntry, utcnow

log = logging.getLogger("commonroom.audit")


def record(session: Session, *, list_id: int | None, actor: str, action: str, target: str = "",
           detail: str = "") -> None:
    # A core INSERT: an ORM object cost ~80 µs to build and its flush more, once per post
    # (issue 12). Rows keep the order of the calls, as the flush kept the order of adds. Nothing
    # reads its result, so in a write-behind scope it goes with the next round trip.
    write_behind.defer(session, _INSERT, {"at": utcnow(), "list_id": list_id, "actor": actor,
                              "action": action, "target": target, "detail": detail})
    log.info("%s %s %s", actor, action, target,
             extra={"list_id": list_id, "actor": actor, "action": action, "target": target})


# inline(): no RETURNING of the new id (nobody reads it), so it can go in a pipeline.
_INSERT = insert(AuditEntry.__table__).inline()  # type: ignore[attr-defined]


def entries(session: Session, list_id: int | None, *, limit: int = 50,
            action_prefix: str = "") -> list[AuditEntry]:
    """The newest ``limit`` entries for a list (site-wide ones when ``list_id`` is None), oldest first."""
    query = select(AuditEntry).where(AuditEntry.list_id == list_id if list_id is not None
                                     else col(AuditEntry.list_id).is_(None))
    if action_prefix:
        query = query.where(col(AuditEntry.action).startswith(action_prefix))
    rows = session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit)).all()
    return list(reversed(rows))
