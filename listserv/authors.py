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
    return Author(address=msg.from_address or msg.envelope_from,
                  # Cleaned again: rows stored before names were cleaned on entry.
                  name=names.clean((row.display_name if row else "") or msg.from_name),
                  organisation=names.clean(row.organisation if row else ""),
                  is_vendor=bool(row and row.kind == PersonKind.VENDOR.value),
                  official=bool(sub and sub.official))
