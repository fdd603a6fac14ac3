"""``lists.find`` reads a list once per transaction (issue 12), and never returns a row the
session renamed, deleted or rolled back, nor one another session changed before this
transaction began."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlmodel import Session

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
