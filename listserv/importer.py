"""Importing members from a Google Groups member export (CSV).

Google's export starts with one or more title lines, then a header row with "Email address",
"Nickname", "Group status" (or "Group role"), "Email preference" and more. Columns are found by
name, so older and newer exports both work. Rows are checked one by one: a bad row is reported
with its line number and never stops the import. Names are cleaned (one line, no control
characters) by ``subscriptions.add_member``, like every other door's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session

from listserv import subscriptions
from listserv.models import DeliveryMode, MailingList, Role

PREFERENCES = {"every email": DeliveryMode.EACH, "all email": DeliveryMode.EACH,
               "email": DeliveryMode.EACH, "digest": DeliveryMode.MIME,
               "abridged": DeliveryMode.PLAIN, "no email": DeliveryMode.NOMAIL,
               "none": DeliveryMode.NOMAIL}
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


def import_rows(session: Session, ml: MailingList, rows: Sequence[Row], summary: Summary) -> None:
    for row in rows:
        email = subscriptions.canonical(row.email)
        if email is None:
            summary.invalid.append((row.line, f"'{row.email}' is not an email address"))
            continue
        role = ROLES.get(row.role.lower(), Role.MEMBER)
        mode = PREFERENCES.get(row.preference.lower(), DeliveryMode.EACH)
        if subscriptions.add_member(session, ml, email, name=row.name, role=role, mode=mode,
                                    actor="import", verified=True):
            summary.added += 1
        else:
            summary.skipped += 1
