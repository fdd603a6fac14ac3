"""Who may read an archive (listserv/archive_access.py): a table of cases."""

from __future__ import annotations

import pytest

from listserv.archive_access import Access, access, decide
from listserv.lists import find
from listserv.models import Role
from listserv.store import Store
from tests.harness import make_list

A, S, R = Access.ALLOWED, Access.SIGN_IN, Access.REFUSED


@pytest.mark.parametrize("archive,role,signed_in,want", [
    ("public", None, False, A),
    ("public", None, True, A),
    ("members", None, False, S),
    ("members", None, True, R),
    ("members", Role.NONMEMBER, True, R),
    ("members", Role.MEMBER, True, A),
    ("members", Role.MODERATOR, True, A),
    ("members", Role.OWNER, True, A),
    ("private", None, False, S),
    ("private", Role.MEMBER, True, R),
    ("private", Role.MODERATOR, True, A),
    ("private", Role.OWNER, True, A),
    ("bogus", Role.MEMBER, True, R),  # an unknown value is private, never public
    ("bogus", None, False, S),
])
def test_decide(archive: str, role: Role | None, signed_in: bool, want: Access) -> None:
    assert decide(archive, role, signed_in=signed_in) is want


def test_access_looks_up_the_viewers_role(store: Store) -> None:
    make_list(store, archive="members", members=("ann@example.org",), moderators=("mo@example.org",))
    with store.read_session() as s:
        ml = find(s, "demo")
        assert ml is not None
        assert access(s, ml, None) is S
        assert access(s, ml, "stranger@example.org") is R
        assert access(s, ml, "Ann@Example.org") is A
        ml.archive = "private"
        assert access(s, ml, "ann@example.org") is R
        assert access(s, ml, "mo@example.org") is A
