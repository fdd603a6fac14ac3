"""Posts through the real posting path for archive tests: accepted, held, rejected, discarded."""

from __future__ import annotations

from listserv import posting
from listserv.config import Config
from listserv.lists import find
from listserv.message import parse
from listserv.models import Action, Message
from listserv.store import Store
from listserv.subscriptions import add_member

CFG = Config()


def post(store: Store, raw: bytes, list_name: str = "demo") -> posting.PostResult:
    """Post ``raw`` to the list as the SMTP door would (one transaction)."""
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        parsed = parse(raw, domain=CFG.server.domain)
        return posting.post(s, CFG, ml, raw, parsed, envelope_from=parsed.from_address or "")


def add_vendor(store: Store, email: str, org: str, list_name: str = "demo",
               name: str = "") -> None:
    with store.session() as s:
        ml = find(s, list_name)
        assert ml is not None
        add_member(s, ml, email, name=name, organisation=org, vendor=True, verified=True)


def statuses(store: Store) -> dict[str, str]:
    """Each stored post's Message-ID -> status."""
    from sqlmodel import select

    with store.session() as s:
        return {m.message_id: m.status for m in s.exec(select(Message))}


__all__ = ["CFG", "Action", "add_vendor", "post", "statuses"]
