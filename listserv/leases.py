"""Leases: a named job that one process at a time may run, held as a ``lease`` row with an
expiry that its holder renews (``listserv.leadership`` runs the loop).

Invariants:
- At most one holder at a time: ``take`` is one conditional UPDATE (the row is ours already,
  or its time is past) after an INSERT that does nothing when the row exists, so two takers
  racing on PostgreSQL (row locks) or SQLite (one writer) cannot both win.
- Time is the processes' clocks (UTC, as everywhere in the store): hosts sharing a store keep
  them in step (NTP); a skew of S seconds moves a takeover by S, never makes two holders while
  the holder renews more often than the skew plus the time to stop.
- ``release`` makes the row free at once, keeping the holder's name for ``holder``.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from listserv.models import Lease, utcnow


def holder_id() -> str:
    """A name for this holder, unique among live ones, that says where it runs."""
    return f"{socket.gethostname()[:60]} pid {os.getpid()} #{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Holding:
    holder: str
    expires_at: datetime
    taken_at: datetime


def take(session: Session, name: str, holder: str, ttl: timedelta,
         now: datetime | None = None) -> bool:
    """Take or renew the lease ``name`` for ``ttl`` from ``now``; False when another holds it."""
    now = now or utcnow()
    table = Lease.__table__  # type: ignore[attr-defined]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(table).values(
        name=name, holder=holder, expires_at=now + ttl, taken_at=now,
    ).on_conflict_do_nothing(index_elements=["name"]))
    # Renewing keeps taken_at; taking it from an expired holder sets it.
    taken = session.execute(update(Lease).where(
        col(Lease.name) == name, col(Lease.holder) != holder, col(Lease.expires_at) < now,
    ).values(holder=holder, expires_at=now + ttl, taken_at=now))
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    renewed = session.execute(update(Lease).where(
        col(Lease.name) == name, col(Lease.holder) == holder,
    ).values(expires_at=now + ttl))
    return bool(renewed.rowcount)  # type: ignore[attr-defined]


def release(session: Session, name: str, holder: str, now: datetime | None = None) -> None:
    """Give the lease up now, if ``holder`` holds it."""
    now = now or utcnow()
    session.execute(update(Lease).where(
        col(Lease.name) == name, col(Lease.holder) == holder,
    ).values(expires_at=now - timedelta(seconds=1)))


def holder(session: Session, name: str, now: datetime | None = None) -> Holding | None:
    """Who holds ``name`` now; None when nobody does."""
    now = now or utcnow()
    row = session.get(Lease, name)
    if row is None or row.expires_at < now:
        return None
    return Holding(row.holder, row.expires_at, row.taken_at)
