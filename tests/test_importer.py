"""Member import in bulk (``listserv.importer.MemberImport``): the same outcome as
``subscriptions.add_member`` row by row, on both backends, with repeated addresses in a file,
members and addresses that already exist, and a re-import that adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from listserv import importer, subscriptions
from listserv.models import (
    Address,
    AuditEntry,
    DeliveryMode,
    MailingList,
    Person,
    Role,
    Subscription,
)
from listserv.store import Store

EXPORT = """Members for group demo@googlegroups.com
Email address,Nickname,Group status,Email preference
ann@council.gov.uk,Ann,member,Every email
Bob@District.gov.uk,,member,Digest
not an address,Someone,member,Every email
bob@district.gov.uk,Bob Later,manager,Every email
cat@acme.example,"Cat
Two",member,No email
old@member.example,Old New Name,owner,Every email
other@list.example,Other,member,Abridged
nonmember@x.example,Non,member,Digest
ann@council.gov.uk,Ann again,owner,Every email
ann@council.gov.uk,,manager,Every email
blank@name.example,Filled,member,Every email
"""


def _setup(store: Store) -> None:
    with store.session() as s:
        demo, other = MailingList(name="demo"), MailingList(name="other")
        s.add_all([demo, other])
        s.flush()
        subscriptions.add_member(s, demo, "old@member.example", name="Old", verified=True)
        subscriptions.add_member(s, demo, "blank@name.example")  # no name, not verified
        subscriptions.add_member(s, other, "other@list.example")
        subscriptions.add_member(s, demo, "nonmember@x.example", role=Role.NONMEMBER)
        s.exec(select(Subscription).where(Subscription.role == "nonmember")).one().moderation = "accept"


def _state(store: Store) -> tuple[object, ...]:
    with store.session() as s:
        members = sorted((a.email, p.display_name, a.verified_at is not None, sub.role,
                          sub.delivery_mode, sub.moderation) for sub, a, p in s.exec(
            select(Subscription, Address, Person)
            .join(Address, col(Subscription.address_id) == col(Address.id))
            .join(Person, col(Address.person_id) == col(Person.id))
            .join(MailingList, col(Subscription.list_id) == col(MailingList.id))
            .where(MailingList.name == "demo")).all())
        audit = [(e.actor, e.action, e.target, e.detail) for e in s.exec(
            select(AuditEntry).order_by(col(AuditEntry.id))).all()]
        people = len(s.exec(select(Person)).all())
    return members, audit, people


def _one_by_one(store: Store, rows: list[importer.Row]) -> importer.Summary:
    """What the import did before it was bulk: add_member for each row, in order."""
    summary = importer.Summary()
    with store.session() as s:
        ml = s.exec(select(MailingList).where(MailingList.name == "demo")).one()
        for row in rows:
            email = subscriptions.canonical(row.email)
            if email is None:
                summary.invalid.append((row.line, f"'{row.email}' is not an email address"))
                continue
            if subscriptions.add_member(
                    s, ml, email, name=row.name, actor="import", verified=True,
                    role=importer.ROLES.get(row.role.lower(), Role.MEMBER),
                    mode=importer.PREFERENCES.get(row.preference.lower(), DeliveryMode.EACH)):
                summary.added += 1
            else:
                summary.skipped += 1
    return summary


def _bulk(store: Store, rows: list[importer.Row], size: int) -> importer.Summary:
    summary = importer.Summary()
    with store.session() as s:
        run = importer.MemberImport(s, s.exec(select(MailingList).where(MailingList.name == "demo")).one())
    for chunk in importer.chunks(rows, size):
        with store.session() as s:
            run.add(s, chunk, summary)
    return summary


@pytest.mark.parametrize("size", [1, 3, 2000], ids=["chunk1", "chunk3", "chunk2000"])
def test_bulk_import_matches_add_member_row_by_row(tmp_path: Path, db_url: str,
                                                   size: int) -> None:
    path = tmp_path / "members.csv"
    path.write_text(EXPORT)
    rows = importer.read_google_groups_csv(path)
    outcomes = []
    for way in ("reference", "bulk"):
        store = Store(db_url.replace("commonroom.db", f"{way}.db")) if "sqlite" in db_url \
            else Store(db_url)
        store.upgrade()
        try:
            _setup(store)
            summary = _one_by_one(store, rows) if way == "reference" else _bulk(store, rows, size)
            outcomes.append((summary, _state(store)))
        finally:
            if "sqlite" not in db_url:  # one PostgreSQL database: empty it for the next way
                with store.engine.begin() as conn:
                    conn.exec_driver_sql("TRUNCATE audit, subscription, address, person, "
                                         "mailing_list RESTART IDENTITY CASCADE")
            store.dispose()
    (ref_summary, ref_state), (summary, state) = outcomes
    invalid = [(5, "'not an address' is not an email address")]
    assert (summary.added, summary.skipped, summary.invalid) == (5, 5, invalid)
    assert (ref_summary.added, ref_summary.skipped, ref_summary.invalid) == \
        (summary.added, summary.skipped, summary.invalid)
    assert state == ref_state
    members = {m[0]: m for m in state[0]}  # type: ignore[attr-defined]
    assert members["ann@council.gov.uk"][1:5] == ("Ann", True, "moderator", "each")
    assert members["bob@district.gov.uk"][1:5] == ("Bob Later", True, "moderator", "mime")
    assert members["cat@acme.example"][1] == "Cat Two"
    assert members["old@member.example"][1:4] == ("Old", True, "owner")
    assert members["blank@name.example"][1:3] == ("Filled", True)
    assert members["nonmember@x.example"][3:] == ("member", "mime", "accept")


def test_reimport_adds_nothing_and_changes_nothing(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "members.csv"
    path.write_text(EXPORT)
    rows = importer.read_google_groups_csv(path)
    _setup(store)
    first = _bulk(store, rows, 4)
    before = _state(store)
    again = _bulk(store, rows, 4)
    assert (first.added, again.added, again.skipped) == (5, 0, 10)
    members, audit, people = _state(store)
    assert (members, people) == (before[0], before[2])
    # As row by row: ann's rows set owner and then moderator again, and that is audited.
    assert [a[1:3] for a in audit[len(before[1]):]] == [  # type: ignore[arg-type]
        ("role-changed", "ann@council.gov.uk"), ("role-changed", "ann@council.gov.uk")]


def _statements_for_chunk(store: Store, emails: list[str]) -> int:
    """How many statements one chunk of new members sends (each executemany batch counts)."""
    from sqlalchemy import event

    rows = [importer.Row(n + 3, e, f"Name {n}", "member", "Digest") for n, e in enumerate(emails)]
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    with store.session() as s:
        run = importer.MemberImport(s, s.exec(select(MailingList).where(MailingList.name == "demo")).one())
    summary = importer.Summary()
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.session() as s:
            run.add(s, rows, summary)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert (summary.added, summary.skipped) == (len(emails), 0)
    return len(seen)


def test_postgres_chunk_is_a_fixed_few_statements(store: Store) -> None:
    """On PostgreSQL each table's rows go in one statement (arrays), whatever the chunk size:
    the round trips, not the rows, were the import's cost there (bench/README.md)."""
    if not store.is_postgres:
        pytest.skip("SQLite has no array parameters; its executemany is in-process anyway")
    _setup(store)
    small = _statements_for_chunk(store, [f"small{n}@council.example" for n in range(30)])
    large = _statements_for_chunk(store, [f"large{n}@council.example" for n in range(3000)])
    assert small == large <= 6
    with store.session() as s:
        assert len(s.exec(select(Subscription).join(MailingList).where(
            MailingList.name == "demo")).all()) == 3 + 3030  # _setup's demo members too
