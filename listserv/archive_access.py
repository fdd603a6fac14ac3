"""Who may read a list's web archive: one decision, taken the same way by every archive page,
the feed, attachments and search.

``decide`` is pure: the list's ``archive`` setting (public | members | private) and the viewer's
role on the list (None when nobody is signed in, ``Role.NONMEMBER`` or no subscription when a
stranger is) give an ``Access``. ``viewer_role`` is the one store lookup behind it. A web door
passes the signed-in viewer's address (or None), so wiring sign-in changes nothing here.

Invariants: a public archive is open to anyone; a members-only archive to any subscribed
member, moderator or owner; a private archive to moderators and owners only. The non-member
entries that only carry a moderation setting never count as members.
"""

from __future__ import annotations

import enum

from sqlmodel import Session

from listserv import subscriptions
from listserv.models import MailingList, Role


class Archive(enum.StrEnum):
    PUBLIC = "public"
    MEMBERS = "members"
    PRIVATE = "private"


class Access(enum.Enum):
    ALLOWED = "allowed"
    SIGN_IN = "sign-in"  # nobody is signed in: signing in as the right person may help
    REFUSED = "refused"  # signed in, but not as someone who may read this archive


_READERS: dict[Archive, frozenset[Role]] = {
    Archive.PUBLIC: frozenset(Role),
    Archive.MEMBERS: frozenset({Role.MEMBER, Role.MODERATOR, Role.OWNER}),
    Archive.PRIVATE: frozenset({Role.MODERATOR, Role.OWNER}),
}


def decide(archive: str, role: Role | None, *, signed_in: bool) -> Access:
    """May a viewer with ``role`` on the list (None: not subscribed) read its archive?
    An unknown ``archive`` value is treated as private: a typo must not publish a list."""
    try:
        setting = Archive(archive)
    except ValueError:
        setting = Archive.PRIVATE
    if setting is Archive.PUBLIC:
        return Access.ALLOWED
    if not signed_in:
        return Access.SIGN_IN
    return Access.ALLOWED if role in _READERS[setting] else Access.REFUSED


def viewer_role(session: Session, ml: MailingList, viewer: str | None) -> Role | None:
    """The signed-in ``viewer``'s role on ``ml`` (None: not signed in, or not subscribed)."""
    if not viewer or ml.id is None:
        return None
    sub = subscriptions.find_subscription(session, ml.id, subscriptions.canonical(viewer) or viewer)
    return Role(sub.role) if sub is not None else None


def access(session: Session, ml: MailingList, viewer: str | None) -> Access:
    """The archive decision for ``viewer`` (a signed-in address, or None) on ``ml``."""
    return decide(ml.archive, viewer_role(session, ml, viewer), signed_in=bool(viewer))
