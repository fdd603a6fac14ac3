"""``lists.find`` reads a list once per transaction (issue 12), and never returns a row the
session renamed, deleted or rolled back, nor one another session changed before this
transaction began."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlmodel import Session, select

from listserv.lists import find
from listserv.models import MailingList
from listserv.store import Store
from tests.harness import make_list


def selects(store: Store) -> list[str]:
    seen: list[str] = []

    def grab(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "FROM mailing_list" in statement:
            seen.append(statement)
    event.listen(store.engine, "before_cursor_execute", grab)
    return seen


def test_a_list_is_read_once_per_transaction(store: Store) -> None:
    make_list(store, "demo")
    seen = selects(store)
    with Session(store.engine) as s:
        s.connection()  # in a transaction, as the pipeline's handling always is
        first = find(s, "demo")
        assert first is not None and find(s, "DEMO") is first
        assert len(seen) == 1
        s.commit()
        with store.session() as other:  # another session's change
            changed = find(other, "demo")
            assert changed is not None
            changed.description = "Changed"
        s.connection()
        found = find(s, "demo")  # is seen from the next transaction
        assert found is not None and found.description == "Changed"
    assert len(seen) == 3


def test_renamed_deleted_or_rolled_back_lists_are_looked_up_again(store: Store) -> None:
    make_list(store, "demo")
    with store.session() as s:
        ml = find(s, "demo")
        assert ml is not None
        ml.name = "renamed"
        s.flush()
        assert find(s, "demo") is None and find(s, "renamed") is ml
        s.delete(ml)
        s.flush()
        assert find(s, "renamed") is None
        s.rollback()
    with Session(store.engine) as s:
        nested = s.begin_nested()
        s.add(MailingList(name="brief"))
        s.flush()
        assert find(s, "brief") is not None
        nested.rollback()
        assert find(s, "brief") is None


def _columns(ml: MailingList) -> dict[str, Any]:
    return {c.key: getattr(ml, c.key) for c in MailingList.__table__.columns}  # type: ignore[attr-defined]


def test_a_list_read_on_the_cursor_is_the_object_the_orm_would_load(store: Store) -> None:
    # Settings off their defaults, a NULL, booleans and a datetime: every conversion counts.
    make_list(store, "demo", emergency=True, bounce_notify_owner_on_disable=False,
              max_message_bytes=None, policy_word_limit=7, archive="private")
    with Session(store.engine) as s:
        expected = s.exec(select(MailingList).where(MailingList.name == "demo")).one()
        orm = _columns(expected)
    seen = selects(store)
    with Session(store.engine) as s:
        ml = find(s, "demo")
        assert ml is not None and len(seen) == 1
        assert _columns(ml) == orm
        assert {k: type(v) for k, v in _columns(ml).items()} == {k: type(v) for k, v in orm.items()}
        assert ml.created_at.tzinfo is not None
        assert inspect(ml).persistent and ml not in s.dirty and not s.new
        assert s.get(MailingList, ml.id) is ml and len(seen) == 1  # in the identity map
        ml.description = "Changed"  # a change flushes as an UPDATE of that row
        s.commit()
    with Session(store.engine) as s:
        again = find(s, "demo")
        assert again is not None and again.description == "Changed" and again.emergency
        s.delete(again)
        s.commit()
    with Session(store.engine) as s:
        assert find(s, "demo") is None


def test_a_session_holding_a_list_reads_it_through_the_orm(store: Store) -> None:
    make_list(store, "demo")
    make_list(store, "other")
    with Session(store.engine) as s:
        other = s.exec(select(MailingList).where(MailingList.name == "other")).one()
        ml = find(s, "demo")  # the ORM decides what a held object gets: not our shortcut's job
        assert ml is not None and ml.name == "demo" and other.name == "other"
        assert inspect(ml).persistent
