"""Bans: an exact address or a pattern, on one list or site-wide, optionally until a date.

A pattern is a regular expression when it starts with "^" (Mailman's convention), matched
case-insensitively against the whole sender address; a pattern with "*", "?" or "[" is a glob
("*@spam.example", what people type), kept as typed and matched with ``fnmatch.fnmatchcase``
(never by editing ``fnmatch.translate``'s output, whose form changes between Python versions).
A pattern that cannot be matched is refused when it is added, never silently ignored later.
The posting pipeline and subscription requests read bans through
``subscriptions.active_bans``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from listserv import audit, subscriptions
from listserv.models import Ban, MailingList
from listserv.rules import is_glob

DURATION = re.compile(r"^(\d+)\s*([hdw])$", re.IGNORECASE)
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


class BanProblem(ValueError):
    """A ban that cannot be added as asked; the message says why and what to type instead."""


@dataclass(frozen=True)
class BanRow:
    id: int
    list_name: str  # "" for a site-wide ban
    pattern: str
    reason: str
    created_at: datetime
    expires_at: datetime | None


def normalise_pattern(text: str) -> str:
    """An address (canonical form), a "^regex", or a glob turned into a "^regex". Pure."""
    text = text.strip()
    if text.startswith("^"):
        try:
            re.compile(text)
        except re.error as e:
            raise BanProblem(f"'{text}' is not a valid regular expression: {e}") from None
        return text
    if is_glob(text):
        try:
            fnmatch.fnmatchcase("", text.lower())  # compiles it: a broken one is refused now
        except re.error as e:
            raise BanProblem(f"'{text}' is not a valid pattern: {e}") from None
        return text.lower()
    address = subscriptions.canonical(text)
    if address is None:
        raise BanProblem(f"'{text}' is neither an address, a pattern like *@example.com, "
                         "nor a regular expression starting with ^")
    return address


def parse_expiry(text: str, now: datetime) -> datetime | None:
    """"" (never), "12h", "30d", "2w", or a date/time (YYYY-MM-DD[THH:MM], UTC). Pure."""
    text = text.strip()
    if not text:
        return None
    m = DURATION.match(text)
    if m:
        return now + int(m.group(1)) * UNITS[m.group(2).lower()]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BanProblem(f"'{text}' is not an expiry: use a duration like 12h, 30d or 2w, "
                         "or a date like 2027-01-31") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= now:
        raise BanProblem(f"{text} is in the past")
    return when


def add(session: Session, ml: MailingList | None, pattern: str, *, reason: str = "",
        expires_at: datetime | None = None, actor: str) -> Ban:
    ban = Ban(list_id=ml.id if ml else None, pattern=normalise_pattern(pattern), reason=reason,
              expires_at=expires_at)
    session.add(ban)
    session.flush()
    subscriptions.forget_bans(session)
    until = f" until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    audit.record(session, list_id=ml.id if ml else None, actor=actor, action="ban-added",
                 target=ban.pattern, detail=(reason + until).strip())
    return ban


def remove(session: Session, ban_id: int, *, actor: str) -> Ban | None:
    ban = session.get(Ban, ban_id)
    if ban is None:
        return None
    session.delete(ban)
    subscriptions.forget_bans(session)
    audit.record(session, list_id=ban.list_id, actor=actor, action="ban-removed",
                 target=ban.pattern, detail=f"ban {ban_id}")
    return ban


def listing(session: Session, ml: MailingList | None, now: datetime,
            *, include_expired: bool = False) -> list[BanRow]:
    """Site-wide bans, plus the list's when ``ml`` is given (all lists' when it is None)."""
    query = select(Ban, MailingList.name).outerjoin(
        MailingList, col(MailingList.id) == col(Ban.list_id)).order_by(col(Ban.id))
    if ml is not None:
        query = query.where((col(Ban.list_id).is_(None)) | (Ban.list_id == ml.id))
    rows = []
    for ban, name in session.exec(query).all():
        if not include_expired and ban.expires_at is not None and ban.expires_at <= now:
            continue
        assert ban.id is not None
        rows.append(BanRow(ban.id, name or "", ban.pattern, ban.reason, ban.created_at,
                           ban.expires_at))
    return rows
