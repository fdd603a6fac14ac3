"""Who wrote a stored post, as every door shows it: the person's cleaned name, organisation and
kind from the store, falling back to the From display name. Delivery (the From header), the
Discord bridge (the webhook's name) read it here, so vendor staff are marked the same way in
both."""

from __future__ import annotations

from sqlmodel import Session, select

from listserv import names
from listserv.decorate import Author
from listserv.models import Address, Message, Person, PersonKind
from listserv.subscriptions import find_subscription


def author_of(session: Session, msg: Message) -> Author:
    row = session.exec(select(Person).join(Address).where(
        Address.email == msg.from_address)).first() if msg.from_address else None
    sub = (find_subscription(session, msg.list_id, msg.from_address)
           if msg.from_address and msg.list_id is not None else None)
    return author(msg.from_address, msg.envelope_from, msg.from_name,
                  (row.display_name, row.organisation, row.kind) if row else None,
                  bool(sub and sub.official))


def author(from_address: str, envelope_from: str, from_name: str,
           person: tuple[str, str, str] | None, official: bool) -> Author:
    """The Author of a post from its columns and its sender's person (display name,
    organisation, kind) if the store has one. Pure: delivery reads the columns in one query."""
    display_name, organisation, kind = person or ("", "", "")
    return Author(address=from_address or envelope_from,
                  # Cleaned again: rows stored before names were cleaned on entry.
                  name=names.clean(display_name or from_name),
                  organisation=names.clean(organisation),
                  is_vendor=kind == PersonKind.VENDOR.value,
                  official=official)
