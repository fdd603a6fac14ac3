"""The audit log: who did what to which list, when and why. Append-only."""

from __future__ import annotations

import logging

from sqlmodel import Session

from listserv.models import AuditEntry

log = logging.getLogger("commonroom.audit")


def record(session: Session, *, list_id: int | None, actor: str, action: str, target: str = "",
           detail: str = "") -> None:
    session.add(AuditEntry(list_id=list_id, actor=actor, action=action, target=target,
                           detail=detail))
    log.info("%s %s %s", actor, action, target,
             extra={"list_id": list_id, "actor": actor, "action": action, "target": target})
