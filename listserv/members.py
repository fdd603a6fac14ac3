"""Changing how a subscriber takes part: vendor or member, official capacity, role, delivery,
moderation; listing a list's members; and one person's record (``info``). One function each for
every door (the CLI and the bot; the web later).

Kind and organisation belong to the person (vendor staff are vendor staff on every list);
official, role, delivery and moderation belong to the subscription on one list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from listserv import audit, names, subscriptions
from listserv.models import (
    Address,
    DeliveryMode,
    MailingList,
    Person,
    PersonKind,
    Role,
    Subscription,
)


class NotSubscribed(LookupError):
    pass


@dataclass(frozen=True)
class RosterEntry:
    """One subscription of a list as ``members list`` shows it."""

    email: str
    name: str
    organisation: str
    vendor: bool
    role: str
    delivery: str
    bounce_score: float = 0.0
    last_bounce_at: datetime | None = None
    delivery_disabled_at: datetime | None = None  # bounces stopped delivery (listserv.bounces)


def roster(session: Session, list_id: int) -> Iterator[RosterEntry]:
    """The list's subscriptions by address, streamed (a list may have 100,000 members):
    consume it while ``session`` is open."""
    query = (sa_select(col(Address.email), col(Person.display_name), col(Person.organisation),
                       col(Person.kind), col(Subscription.role), col(Subscription.delivery_mode),
                       col(Subscription.bounce_score), col(Subscription.last_bounce_at),
                       col(Subscription.delivery_disabled_at))
             .join(Address, col(Address.id) == col(Subscription.address_id))
             .join(Person, col(Person.id) == col(Address.person_id))
             .where(col(Subscription.list_id) == list_id)
             .order_by(col(Address.email)).execution_options(yield_per=1000))
    for email, name, org, kind, role, mode, score, last, disabled in session.execute(query):
        yield RosterEntry(email, name, org, kind == PersonKind.VENDOR.value, role, mode,
                          score, last, disabled)


@dataclass(frozen=True)
class Membership:
    """One subscription of a person, as ``info`` shows it."""

    list_name: str
    email: str
    role: str
    delivery: str
    official: bool
    moderation: str  # "" = the list's rules


@dataclass(frozen=True)
class PersonInfo:
    name: str
    organisation: str
    vendor: bool
    addresses: tuple[str, ...]
    memberships: tuple[Membership, ...]


def info(session: Session, person_id: int) -> PersonInfo | None:
    """A person's name, kind, addresses and subscriptions (every list), or None."""
    person = session.get(Person, person_id)
    if person is None:
        return None
    addresses = session.exec(select(Address).where(Address.person_id == person_id)
                             .order_by(col(Address.email))).all()
    rows = session.exec(select(Subscription, MailingList.name, Address.email)
                        .join(Address, col(Address.id) == col(Subscription.address_id))
                        .join(MailingList, col(MailingList.id) == col(Subscription.list_id))
                        .where(Address.person_id == person_id)
                        .order_by(col(MailingList.name), col(Address.email))).all()
    return PersonInfo(person.display_name, person.organisation,
                      person.kind == PersonKind.VENDOR.value, tuple(a.email for a in addresses),
                      tuple(Membership(name, email, sub.role, sub.delivery_mode, sub.official,
                                       sub.moderation) for sub, name, email in rows))


def person_of(session: Session, email: str) -> int | None:
    """The person an address belongs to, or None when the address is not known."""
    return session.exec(select(Address.person_id).where(Address.email == email)).first()


@dataclass(frozen=True)
class Changes:
    """What to change; None leaves a field as it is."""

    kind: PersonKind | None = None
    organisation: str | None = None
    official: bool | None = None
    role: Role | None = None
    delivery: DeliveryMode | None = None
    moderation: str | None = None  # "" = the list's rules, else an Action value
    name: str | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def apply(session: Session, ml: MailingList, email: str, changes: Changes, *, actor: str) -> str:
    """Apply ``changes`` to ``email``'s subscription on ``ml``; returns what was done, in words."""
    assert ml.id is not None
    sub = subscriptions.find_subscription(session, ml.id, email)
    if sub is None:
        raise NotSubscribed(f"{email} is not subscribed to {ml.name}; add them first with "
                            f"'commonroom members add {ml.name} {email}'")
    address = session.get(Address, sub.address_id)
    assert address is not None
    person = session.get(Person, address.person_id)
    assert person is not None
    done: list[str] = []
    if changes.kind is not None:
        person.kind = changes.kind.value
        if changes.kind is PersonKind.VENDOR:
            person.organisation = names.clean(changes.organisation or "") or person.organisation
            done.append(f"vendor staff ({person.organisation})")
        else:
            done.append("community member")
    if changes.name is not None:
        person.display_name = names.clean(changes.name)
        done.append(f"name {person.display_name!r}")
    if changes.official is not None:
        sub.official = changes.official
        done.append("posts in an official capacity" if changes.official else "not official")
    if changes.role is not None:
        sub.role = changes.role.value
        subscriptions.forget_moderators(session)
        done.append(f"role {changes.role.value}")
    if changes.delivery is not None:
        sub.delivery_mode = changes.delivery.value
        done.append(f"delivery {changes.delivery.value}")
    if changes.moderation is not None:
        sub.moderation = changes.moderation
        done.append(f"moderation {changes.moderation or 'default'}")
    session.add_all([person, sub])
    summary = "; ".join(done)
    audit.record(session, list_id=ml.id, actor=actor, action="member-changed", target=email,
                 detail=summary)
    return summary
