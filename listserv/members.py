"""Changing how a subscriber takes part: vendor or member, official capacity, role, delivery,
moderation. One function for every door (CLI now; the bot and the web later).

Kind and organisation belong to the person (vendor staff are vendor staff on every list);
official, role, delivery and moderation belong to the subscription on one list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlmodel import Session

from listserv import audit, names, subscriptions
from listserv.models import Address, DeliveryMode, MailingList, Person, PersonKind, Role


class NotSubscribed(LookupError):
    pass


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
