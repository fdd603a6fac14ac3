"""Reading the signed member links (unsubscribe, delivery) that mail carries.

Invariants: a token is good only for the list and the purpose it was signed for, and names
exactly one address (``links.check_unsubscribe_token``); a list name in the path is matched as
the list is stored, so ``/lists/Demo/...`` and ``/lists/demo/...`` are the same list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from listserv import links, lists
from listserv.models import MailingList


@dataclass(frozen=True)
class MemberLink:
    """Plain values, usable after the session that read them has closed."""

    list_id: int
    list_name: str
    email: str


def read(session: Session, secret: bytes, list_name: str, token: str,
         purpose: str) -> MemberLink | None:
    """The list and address a genuine ``purpose`` token for ``list_name`` names, or None."""
    ml = lists.find(session, list_name)
    if ml is None or ml.id is None:
        return None
    email = links.check_unsubscribe_token(secret, ml.name, token, purpose)
    return MemberLink(ml.id, ml.name, email) if email else None


def the_list(session: Session, link: MemberLink) -> MailingList:
    ml = session.get(MailingList, link.list_id)
    assert ml is not None
    return ml
