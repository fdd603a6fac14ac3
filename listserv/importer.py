"""Importing members from a Google Groups member export (CSV).

Google's export starts with one or more title lines, then a header row with "Email address",
"Nickname", "Group status" (or "Group role"), "Email preference" and more. Columns are found by
name, so older and newer exports both work. Rows are checked one by one: a bad row is reported
with its line number and never stops the import. Names are cleaned (one line, no control
characters) with ``names.clean`` and addresses made canonical with ``subscriptions.canonical``,
as every other door's are; the rows are then written in bulk (``MemberImport``), with the same
outcome as ``subscriptions.add_member`` row by row.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Connection,
    Table,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from listserv import names, subscriptions
from listserv.models import (
    Address,
    AuditEntry,
    DeliveryMode,
    MailingList,
    Person,
    PersonKind,
    Role,
    Subscription,
    utcnow,
)

log = logging.getLogger("commonroom.importer")
_PERSON: Table = Person.__table__  # type: ignore[attr-defined]
_ADDR: Table = Address.__table__  # type: ignore[attr-defined]
_SUB: Table = Subscription.__table__  # type: ignore[attr-defined]
_AUDIT: Table = AuditEntry.__table__  # type: ignore[attr-defined]

PREFERENCES = {"every email": DeliveryMode.EACH, "all email": DeliveryMode.EACH,
               "email": DeliveryMode.EACH, "digest": DeliveryMode.MIME,
               "abridged": DeliveryMode.PLAIN, "no email": DeliveryMode.NOMAIL,
               "none": DeliveryMode.NOMAIL}
CHUNK = 2000  # rows per transaction: a few statements each, and progress kept if interrupted
ROLES = {"owner": Role.OWNER, "manager": Role.MODERATOR, "member": Role.MEMBER}


class ImportProblem(Exception):
    """The file as a whole cannot be imported."""


@dataclass(frozen=True)
class Row:
    line: int
    email: str
    name: str = ""
    role: str = ""
    preference: str = ""


@dataclass
class Summary:
    added: int = 0
    skipped: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)


def _column(header: Sequence[str], *names: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _cell(record: Sequence[str], cols: dict[str, int | None], key: str) -> str:
    idx = cols.get(key)
    return record[idx].strip() if idx is not None and idx < len(record) else ""


def read_google_groups_csv(path: Path) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="cp1252")
    # The csv module reads quoted cells that span lines (a name with a line break) itself;
    # splitting the text into lines first would glue such a cell's halves together.
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[Row] = []
    email_col: int | None = None
    cols: dict[str, int | None] = {}
    ended = 0
    for record in reader:
        line_no, ended = ended + 1, reader.line_num  # the line the record starts on
        if email_col is None:
            email_col = _column(record, "email address", "email")
            if email_col is not None:
                cols = {"name": _column(record, "nickname", "name", "display name"),
                        "role": _column(record, "group role", "group status", "role"),
                        "preference": _column(record, "email preference",
                                              "email preferences", "delivery")}
            continue
        if not any(cell.strip() for cell in record):
            continue

        email = record[email_col].strip() if email_col < len(record) else ""
        rows.append(Row(line_no, email, _cell(record, cols, "name"), _cell(record, cols, "role"),
                        _cell(record, cols, "preference")))
    if email_col is None:
        raise ImportProblem(f"{path} has no 'Email address' column; export the members from "
                            "Google Groups (Members > Export members) and try again")
    return rows


def chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


@dataclass
class _Member:
    """An address on the list (read once at the start, or added by this import)."""
    sub_id: int
    address_id: int
    person_id: int
    role: str
    moderation: str
    named: bool
    verified: bool


@dataclass
class _New:
    """A row that subscribes an address the list does not have yet (written at chunk end)."""
    email: str
    name: str
    role: Role
    mode: DeliveryMode


@dataclass
class _Chunk:
    """What one chunk writes, gathered first so that each kind is one statement."""
    new: dict[str, _New] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)  # person id -> name for a blank one
    verify: set[int] = field(default_factory=set)  # address ids
    roles: list[dict[str, object]] = field(default_factory=list)
    joins: list[dict[str, object]] = field(default_factory=list)  # non-members who subscribe
    audit: list[dict[str, object]] = field(default_factory=list)


class MemberImport:
    """One import into one list, in chunks (each chunk in the caller's transaction).

    The list's members are read once, when this is made; each chunk then costs a fixed number
    of statements whatever its size: a lookup of the addresses it subscribes, one INSERT per
    table (ON CONFLICT DO NOTHING, so a member added meanwhile by another door is skipped, not
    an error) and one executemany per kind of change. Rows are decided in file order with the
    same outcome as ``subscriptions.add_member`` row by row: names fill blanks only, a known
    non-member becomes a member (keeping its moderation), a role other than "member" is set
    on an existing member, and a repeated address counts as skipped.
    """

    def __init__(self, session: Session, ml: MailingList) -> None:
        assert ml.id is not None
        self.list_id = ml.id
        query = select(_ADDR.c.email, _SUB.c.id, _ADDR.c.id, _ADDR.c.person_id, _SUB.c.role,
                       _SUB.c.moderation, _PERSON.c.display_name, _ADDR.c.verified_at
                       ).select_from(_SUB.join(_ADDR, _SUB.c.address_id == _ADDR.c.id)
                                     .join(_PERSON, _ADDR.c.person_id == _PERSON.c.id)
                                     ).where(_SUB.c.list_id == ml.id)
        self.members = {r[0]: _Member(r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7] is not None)
                        for r in session.connection().execute(query)}

    def add(self, session: Session, rows: Sequence[Row], summary: Summary) -> None:
        chunk = _Chunk()
        for row in rows:
            email = subscriptions.canonical(row.email)
            if email is None:
                summary.invalid.append((row.line, f"'{row.email}' is not an email address"))
                continue
            role = ROLES.get(row.role.lower(), Role.MEMBER)
            mode = PREFERENCES.get(row.preference.lower(), DeliveryMode.EACH)
            if self._decide(chunk, email, names.clean(row.name), role, mode):
                summary.added += 1
            else:
                summary.skipped += 1
        self._write(session, chunk)
        log.info("imported a chunk of members", extra={
            "list_id": self.list_id, "rows": len(rows), "new": len(chunk.new)})

    def _decide(self, chunk: _Chunk, email: str, name: str, role: Role,
                mode: DeliveryMode) -> bool:
        """True when the row subscribes ``email``; the writes it needs go into ``chunk``."""
        def note(action: str, detail: str, actor: str = "import") -> None:
            chunk.audit.append({"list_id": self.list_id, "actor": actor, "action": action,
                                "target": email, "detail": detail})

        pending = chunk.new.get(email)
        member = self.members.get(email)
        if pending is None and member is None:
            chunk.new[email] = _New(email, name, role, mode)
            note("subscribed", f"role={role.value} delivery={mode.value}")
            return True
        if pending is not None:
            pending.name = pending.name or name
            if role is not Role.MEMBER and pending.role is not role:
                pending.role = role
                note("role-changed", role.value)
            return False
        assert member is not None
        if name and not member.named:
            chunk.names[member.person_id], member.named = name, True
        if not member.verified:
            chunk.verify.add(member.address_id)
            member.verified = True
        if member.role == Role.NONMEMBER.value:
            member.role = role.value
            chunk.joins.append({"s_id": member.sub_id, "s_role": role.value, "s_mode": mode.value})
            note("subscribed", f"role={role.value} delivery={mode.value} (was a non-member; "
                               f"moderation {member.moderation or 'default'} kept)")
            return True
        if role is not Role.MEMBER and member.role != role.value:
            member.role = role.value
            chunk.roles.append({"s_id": member.sub_id, "s_role": role.value})
            note("role-changed", role.value)
        return False

    def _write(self, session: Session, chunk: _Chunk) -> None:
        conn = session.connection()
        now = utcnow()
        if chunk.new:
            self._subscribe(conn, chunk, now)
        if chunk.names:
            conn.execute(update(_PERSON).where(_PERSON.c.id == bindparam("p_id"),
                                               _PERSON.c.display_name == "")
                         .values(display_name=bindparam("p_name")),
                         [{"p_id": k, "p_name": v} for k, v in chunk.names.items()])
        if chunk.verify:
            conn.execute(update(_ADDR).where(_ADDR.c.id.in_(sorted(chunk.verify)),
                                             _ADDR.c.verified_at.is_(None))
                         .values(verified_at=now))
        if chunk.joins:
            conn.execute(update(_SUB).where(_SUB.c.id == bindparam("s_id")).values(
                role=bindparam("s_role"), delivery_mode=bindparam("s_mode")), chunk.joins)
        if chunk.roles:
            conn.execute(update(_SUB).where(_SUB.c.id == bindparam("s_id")).values(
                role=bindparam("s_role")), chunk.roles)
        if chunk.audit:
            _insert_all(conn, _AUDIT, [{**a, "at": now} for a in chunk.audit])

    def _subscribe(self, conn: Connection, chunk: _Chunk, now: datetime) -> None:
        """Addresses (and their people) where missing, then the subscriptions."""
        emails = list(chunk.new)
        known = {r[0]: tuple(r) for r in conn.execute(
            select(_ADDR.c.email, _ADDR.c.id, _ADDR.c.person_id, _PERSON.c.display_name,
                   _ADDR.c.verified_at).join(_PERSON, _ADDR.c.person_id == _PERSON.c.id)
            .where(_among(conn, _ADDR.c.email, emails)))}
        missing = [chunk.new[e] for e in emails if e not in known]
        if missing:
            person_ids = _new_people(conn, [
                {"display_name": n.name, "organisation": "", "kind": PersonKind.MEMBER.value,
                 "created_at": now} for n in missing])
            added = _insert(conn, _ADDR, [
                {"email": n.email, "person_id": pid, "verified_at": now}
                for n, pid in zip(missing, person_ids, strict=True)],
                conflict=["email"], returning=[_ADDR.c.email, _ADDR.c.id, _ADDR.c.person_id])
            names_by_email = {n.email: n.name for n in missing}
            known.update({e: (e, a, p, names_by_email[e], now) for e, a, p in added})
            raced = [n.email for n in missing if n.email not in known]  # added meanwhile
            if raced:
                known.update({r[0]: tuple(r) for r in conn.execute(
                    select(_ADDR.c.email, _ADDR.c.id, _ADDR.c.person_id,
                           _PERSON.c.display_name, _ADDR.c.verified_at)
                    .join(_PERSON, _ADDR.c.person_id == _PERSON.c.id)
                    .where(_among(conn, _ADDR.c.email, raced)))})
        for email in emails:  # addresses known from elsewhere: fill blanks, as ensure_address
            _, addr_id, person_id, display_name, verified_at = known[email]
            if chunk.new[email].name and not display_name:
                chunk.names[person_id] = chunk.new[email].name
            if verified_at is None:
                chunk.verify.add(addr_id)
        sub_ids: dict[int, int] = dict(_insert(conn, _SUB, [
            {"list_id": self.list_id, "address_id": known[e][1], "role": n.role.value,
             "delivery_mode": n.mode.value, "moderation": "", "official": False,
             "created_at": now} for e, n in chunk.new.items()],
            conflict=["list_id", "address_id"], returning=[_SUB.c.address_id, _SUB.c.id]))
        raced = [known[e][1] for e in emails if known[e][1] not in sub_ids]
        if raced:  # subscribed meanwhile by another door: skipped by the insert
            sub_ids.update(conn.execute(select(_SUB.c.address_id, _SUB.c.id).where(
                _SUB.c.list_id == self.list_id, _among(conn, _SUB.c.address_id, raced))).all())
        for email, n in chunk.new.items():
            addr_id, person_id = known[email][1], known[email][2]
            self.members[email] = _Member(sub_ids[addr_id], addr_id, person_id, n.role.value, "",
                                          bool(n.name or known[email][3]), True)


# --- bulk statements -----------------------------------------------------------------------
# On PostgreSQL each goes as one statement with one array parameter per column (unnest):
# executemany there is a round trip per row or per batch, and its long multi-VALUES texts
# cost more to build than the rows to write. SQLite, in-process, takes executemany.


def _among(conn: Connection, column: ColumnElement[Any], values: list[Any]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY(array)``, one parameter however many."""
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(_array(column.type, values))


def _array(type_: Any, values: list[Any]) -> ColumnElement[Any]:
    return cast(bindparam(None, values, type_=ARRAY(type_)), ARRAY(type_))


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]], *,
            conflict: list[str], returning: list[Column[Any]]) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (all with the same keys), skipping conflicts on ``conflict``; the
    ``returning`` columns of the rows inserted (not of those skipped), in no set order."""
    if conn.dialect.name != "postgresql":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
        return [tuple(r) for r in conn.execute(stmt.returning(*returning), rows)]
    pg = _unnest_insert(table, rows).on_conflict_do_nothing(index_elements=conflict)
    return [tuple(r) for r in conn.execute(pg.returning(*returning))]


def _insert_all(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
    else:
        conn.execute(_unnest_insert(table, rows))


def _new_people(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert people (no natural key); their ids in the order of ``rows``."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(
            insert(_PERSON).returning(_PERSON.c.id, sort_by_parameter_order=True),
            rows).scalars().all())
    # The ids are drawn first, so that they match the rows without relying on RETURNING order.
    ids = list(conn.execute(select(func.nextval(func.pg_get_serial_sequence("person", "id")))
                            .select_from(func.generate_series(1, len(rows)))).scalars().all())
    _insert_all(conn, _PERSON, [{**r, "id": i} for r, i in zip(rows, ids, strict=True)])
    return ids


def _unnest_insert(table: Table, rows: list[dict[str, Any]]) -> postgresql.Insert:
    """``INSERT INTO table (keys) SELECT * FROM unnest(array, ...)``; columns not in ``rows``
    get their Python-side defaults, as with executemany."""
    keys = list(rows[0])
    source = func.unnest(*(_array(table.c[k].type, [r[k] for r in rows]) for k in keys)) \
        .table_valued(*keys).render_derived(name="u")
    return postgresql.insert(table).from_select(keys, select(*(source.c[k] for k in keys)))


def import_rows(session: Session, ml: MailingList, rows: Sequence[Row], summary: Summary) -> None:
    """Import ``rows`` in one go (one transaction); the CLI uses ``MemberImport`` chunk by chunk."""
    MemberImport(session, ml).add(session, rows, summary)
