"""Membership: double opt-in requests, confirmations, and direct adds by list owners.

Invariants:
- Nobody is subscribed or unsubscribed, nor has their delivery changed, by mail without
  confirming from the address itself (a token mailed there, single use, expiring after
  ``CONFIRM_TTL``): From can be forged.
- A non-member entry (a moderation setting for a known sender) is not membership: it neither
  stops joining nor allows leaving; joining turns it into a member and keeps the setting.
- No subscription bombing: at most ``MAX_PENDING_PER_DAY`` confirmation mails per address per
  day, over all lists, and none at all to a banned address.
- Every change is written to the audit log; the caller's transaction makes it atomic with the
  mail it queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from listserv import audit, links, names, notices, outbox, write_behind
from listserv.addresses import Kind, list_address, normalise_address
from listserv.config import Config
from listserv.lists import list_info
from listserv.models import (
    Address,
    Ban,
    DeliveryMode,
    MailingList,
    Pending,
    Person,
    PersonKind,
    Role,
    Subscription,
    utcnow,
)
from listserv.rules import Ban as BanRule
from listserv.store import per_transaction

CONFIRM_TTL = timedelta(hours=72)
MAX_PENDING_PER_DAY = 3


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str  # for the person who asked, whatever door they came through


def canonical(address: str) -> str | None:
    """The form addresses are stored and compared in (case-insensitive, like Mailman)."""
    norm = normalise_address(address)
    return norm.lower() if norm else None


_BANS = "commonroom_bans"  # session.info: (transaction, {list id: its bans and the site's})
_MODERATORS = "commonroom_moderators"  # session.info: (transaction, {list id: its moderators})


def active_bans(session: Session, list_id: int | None, now: datetime) -> list[BanRule]:
    """The bans in force for ``list_id``. Read once per transaction and list (a post asks
    twice, and the group committer runs many posts in one transaction); ``bans.add`` and
    ``bans.remove`` forget what was read (``forget_bans``)."""
    by_list: dict[int | None, list[BanRule]] = per_transaction(session, _BANS)
    rules = by_list.get(list_id)
    if rules is None:
        rows = write_behind.rows(session, _BANS_OF, {"list_id": list_id})
        rules = by_list[list_id] = [BanRule(pattern, expires_at) for pattern, expires_at in rows]
    return [b for b in rules if b.expires_at is None or b.expires_at > now]


BAN = Ban.__table__  # type: ignore[attr-defined]
# Built once, as core (each post asks): the site's bans and the list's.
_BANS_OF = core_select(BAN.c.pattern, BAN.c.expires_at).where(
    or_(BAN.c.list_id.is_(None), BAN.c.list_id == bindparam("list_id")))


def forget_bans(session: Session) -> None:
    """The bans changed in this session: read them again when next asked."""
    session.info.pop(_BANS, None)


def is_banned(session: Session, list_id: int | None, email: str, now: datetime) -> bool:
    return any(b.matches(email, now) for b in active_bans(session, list_id, now))


def find_subscription(session: Session, list_id: int, email: str) -> Subscription | None:
    return session.exec(select(Subscription).join(Address).where(
        Subscription.list_id == list_id, Address.email == email)).first()


@dataclass(frozen=True, slots=True)
class Standing:
    """What the posting rules ask of a sender: their subscription to the list, if any
    (``subscribed``), and their person's kind ("member" for an unknown address) and name (None
    for an unknown address: the archive names the author from it, ``thread_summary``)."""

    subscribed: bool = False
    role: str = ""
    moderation: str = ""
    official: bool = False
    kind: str = PersonKind.MEMBER.value
    person_name: str | None = None

    @property
    def is_member(self) -> bool:
        return self.subscribed and self.role != Role.NONMEMBER.value


SUBSCRIPTION = Subscription.__table__  # type: ignore[attr-defined]
ADDRESS = Address.__table__  # type: ignore[attr-defined]
PERSON = Person.__table__  # type: ignore[attr-defined]
# ``find_subscription``'s row and the person's kind the participation policy asks for, in one
# prebuilt core query (an address has one person and at most one subscription per list).
_STANDING = core_select(SUBSCRIPTION.c.id, SUBSCRIPTION.c.role, SUBSCRIPTION.c.moderation,
                        SUBSCRIPTION.c.official, PERSON.c.kind, PERSON.c.display_name).select_from(
    ADDRESS.join(PERSON, PERSON.c.id == ADDRESS.c.person_id).outerjoin(
        SUBSCRIPTION, and_(SUBSCRIPTION.c.address_id == ADDRESS.c.id,
                           SUBSCRIPTION.c.list_id == bindparam("list_id")))).where(
    ADDRESS.c.email == bindparam("email"))


def standing(session: Session, list_id: int, email: str) -> Standing:
    """``email``'s standing on the list, in one query (a post asks it of every sender)."""
    found = write_behind.rows(session, _STANDING, {"list_id": list_id, "email": email})
    if not found:
        return Standing()
    sub_id, role, moderation, official, kind, name = found[0]
    if sub_id is None:
        return Standing(kind=kind, person_name=name)
    return Standing(True, role, moderation, bool(official), kind, name)


def _bounces(cfg: Config, ml: MailingList) -> str:
    return list_address(ml.name, cfg.server.domain, Kind.BOUNCES)


# Pending actions a moderator's mailed request makes (``listserv.mod_mail``): "add-event",
# "chg-event", "cxl-competition"… (add, change, cancel).
TOOL_PREFIXES = ("add-", "chg-", "cxl-")
DELIVERY_ACTION = "delivery-"  # + a DeliveryMode value: a confirmed change of delivery


def delivery_action(mode: DeliveryMode) -> str:
    return DELIVERY_ACTION + mode.value


def delivery_mode_of(action: str) -> DeliveryMode | None:
    """The delivery a pending action asks for ("delivery-mime"), or None. Pure."""
    if not action.startswith(DELIVERY_ACTION):
        return None
    return DeliveryMode(action.removeprefix(DELIVERY_ACTION))


def describe_delivery(mode: DeliveryMode) -> str:
    """What a member gets in ``mode``, in words. Pure."""
    if mode is DeliveryMode.EACH:
        return "each post as it is sent, and no digest"
    if mode is DeliveryMode.NOMAIL:
        return "no mail from the list (you stay subscribed)"
    return f"the weekly digest ({mode.value}) instead of each post"


def request(session: Session, cfg: Config, ml: MailingList, address: str, action: str,
            *, display_name: str = "", via: str = "email") -> Outcome:
    """Ask ``address`` to confirm joining (action "subscribe"), leaving ("unsubscribe") or a
    change of delivery (``delivery_action(mode)``): From can be forged, so the address itself
    must say yes."""
    assert ml.id is not None
    email = canonical(address)
    if email is None:
        return Outcome(False, f"'{address}' is not an email address we can write to")
    now = utcnow()
    if is_banned(session, ml.id, email, now):
        audit.record(session, list_id=ml.id, actor=email, action=f"{action}-refused",
                     target=email, detail=f"banned address (via {via})")
        return Outcome(False, f"{email} may not join {ml.name}")
    # A non-member entry ("approve always" makes one) only carries a moderation setting: it
    # neither stops joining nor counts as membership for leaving.
    member = find_subscription(session, ml.id, email)
    if member is not None and member.role == Role.NONMEMBER.value:
        member = None
    if action == "subscribe" and member is not None:
        return Outcome(False, f"{email} is already a member of {ml.name}")
    if action != "subscribe" and member is None:
        return Outcome(False, f"{email} is not a member of {ml.name}")
    mode = delivery_mode_of(action)
    if member is not None and mode is not None and member.delivery_mode == mode.value:
        return Outcome(True, f"{email} already gets {describe_delivery(mode)}")
    recent = session.exec(select(func.count()).select_from(Pending).where(
        Pending.email == email, Pending.created_at > now - timedelta(days=1),
        *[col(Pending.action).not_like(p + "%") for p in TOOL_PREFIXES])).one()
    if recent >= MAX_PENDING_PER_DAY:
        audit.record(session, list_id=ml.id, actor=email, action=f"{action}-refused",
                     target=email, detail=f"too many confirmation requests today (via {via})")
        return Outcome(False, f"too many requests for {email} today; try again tomorrow")
    token = links.new_token()
    session.add(Pending(token_hash=links.token_hash(token), list_id=ml.id, email=email,
                        display_name=names.clean(display_name), action=action, created_at=now,
                        expires_at=now + CONFIRM_TTL))
    info = list_info(ml, cfg)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=email, sender=_bounces(cfg, ml),
                          payload=notices.confirm_request(info, email, token, action))
    audit.record(session, list_id=ml.id, actor=email, action=f"{action}-requested",
                 target=email, detail=f"via {via}")
    return Outcome(True, f"a confirmation request was sent to {email}")


def find_pending(session: Session, token: str) -> tuple[Pending | None, str | None]:
    """The request ``token`` was made for, and why it cannot be carried out now (None: it
    can). Changes nothing, so a page can show what confirming would do."""
    pending = session.exec(select(Pending).where(
        Pending.token_hash == links.token_hash(token))).first()
    if pending is None:
        return None, "that confirmation code is not known; ask again for a new one"
    if pending.used_at is not None:
        return pending, "that confirmation code has already been used"
    if pending.expires_at <= utcnow():
        return pending, "that confirmation code has expired; ask again for a new one"
    return pending, None


def describe_action(action: str, list_name: str, pending: Pending | None = None) -> str:
    """What confirming a pending ``action`` does, in words ("join demo"). Pure."""
    if action.startswith(TOOL_PREFIXES) and pending is not None:
        from listserv import mod_mail  # a higher service (it creates events): imported late

        return mod_mail.describe(pending, list_name)
    mode = delivery_mode_of(action)
    if mode is not None:
        return f"get {describe_delivery(mode)} from {list_name}"
    return f"join {list_name}" if action == "subscribe" else f"leave {list_name}"


def confirm(session: Session, cfg: Config, token: str, *, via: str = "email") -> Outcome:
    """Carry out the pending request that ``token`` was made for."""
    pending, problem = find_pending(session, token)
    if pending is None or problem is not None:
        return Outcome(False, problem or "")
    now = utcnow()
    ml = session.get(MailingList, pending.list_id)
    assert ml is not None and ml.id is not None
    pending.used_at = now
    session.add(pending)
    if pending.action.startswith(TOOL_PREFIXES):
        from listserv import mod_mail  # a higher service (it creates events): imported late

        return mod_mail.confirmed(session, cfg, pending, via=via)
    info = list_info(ml, cfg)
    if pending.action == "subscribe":
        if is_banned(session, ml.id, pending.email, now):
            return Outcome(False, f"{pending.email} may not join {ml.name}")
        added = add_member(session, ml, pending.email, name=pending.display_name,
                           actor=pending.email, verified=True)
        if added:
            outbox.enqueue_notice(session, list_id=ml.id, recipient=pending.email,
                                  sender=_bounces(cfg, ml),
                                  payload=notices.welcome(info, pending.email))
        return Outcome(True, f"{pending.email} is now a member of {ml.name}")
    mode = delivery_mode_of(pending.action)
    if mode is not None:
        return set_delivery(session, ml, pending.email, mode, via=via)
    return leave(session, cfg, ml, pending.email, via=via)


def is_member(session: Session, list_id: int, email: str) -> bool:
    """Subscribed as a member, moderator or owner (a non-member entry is not membership)."""
    sub = find_subscription(session, list_id, email)
    return sub is not None and sub.role != Role.NONMEMBER.value


def leave(session: Session, cfg: Config, ml: MailingList, email: str, *,
          via: str = "email") -> Outcome:
    """Unsubscribe ``email`` now, with a goodbye mail: the address itself has already said so
    (a confirmed request, or a signed link mailed to it)."""
    assert ml.id is not None
    if not is_member(session, ml.id, email):
        return Outcome(True, f"{email} is not a member of {ml.name}")
    remove_member(session, ml, email, actor=email, via=via)
    outbox.enqueue_notice(session, list_id=ml.id, recipient=email, sender=_bounces(cfg, ml),
                          payload=notices.goodbye(list_info(ml, cfg), email))
    return Outcome(True, f"{email} has left {ml.name}")


def set_delivery(session: Session, ml: MailingList, email: str, mode: DeliveryMode, *,
                 via: str = "email", actor: str = "") -> Outcome:
    """Change how ``email`` gets ``ml``'s mail, now: the address itself has said so (a
    confirmation by mail, a signed link mailed to it, or a Discord account linked with a code
    mailed to that address)."""
    assert ml.id is not None
    sub = find_subscription(session, ml.id, email)
    if sub is None or sub.role == Role.NONMEMBER.value:
        return Outcome(False, f"{email} is not a member of {ml.name}")
    sub.delivery_mode = mode.value
    session.add(sub)
    audit.record(session, list_id=ml.id, actor=actor or email, action="delivery-changed",
                 target=email, detail=f"{mode.value} (via {via})")
    return Outcome(True, f"{email} will get {describe_delivery(mode)}")


def ensure_address(session: Session, email: str, *, name: str = "", organisation: str = "",
                   vendor: bool | None = None, verified: bool = False) -> Address:
    """The address row for ``email`` (with its person), created if new; fills blanks only.

    Every door that names a person comes through here, so the name and organisation are
    cleaned here (one line, no control characters)."""
    name, organisation = names.clean(name), names.clean(organisation)
    addr = session.exec(select(Address).where(Address.email == email)).first()
    if addr is None:
        person = Person(display_name=name, organisation=organisation,
                        kind=(PersonKind.VENDOR if vendor else PersonKind.MEMBER).value)
        session.add(person)
        session.flush()
        assert person.id is not None
        addr = Address(email=email, person_id=person.id)
        session.add(addr)
    else:
        found = session.get(Person, addr.person_id)
        assert found is not None
        person = found
        person.display_name = person.display_name or name
        person.organisation = organisation or person.organisation
        if vendor is not None:
            person.kind = (PersonKind.VENDOR if vendor else PersonKind.MEMBER).value
        session.add(person)
    if verified and addr.verified_at is None:
        addr.verified_at = utcnow()
    session.flush()
    return addr


def add_member(session: Session, ml: MailingList, email: str, *, name: str = "",
               organisation: str = "", vendor: bool | None = None,
               role: Role = Role.MEMBER, mode: DeliveryMode = DeliveryMode.EACH,
               actor: str = "", verified: bool = False) -> bool:
    """Subscribe ``email`` directly (an owner's action, or a confirmed request).

    Returns False when it was already subscribed (its role is raised if asked for). A known
    non-member (a moderation setting only) becomes a member with ``role`` and ``mode``, keeping
    its moderation setting, and that counts as subscribing (True).
    """
    assert ml.id is not None
    addr = ensure_address(session, email, name=name, organisation=organisation, vendor=vendor,
                          verified=verified)
    assert addr.id is not None
    existing = find_subscription(session, ml.id, email)
    if existing is not None and existing.role == Role.NONMEMBER.value \
            and role is not Role.NONMEMBER:
        existing.role = role.value
        existing.delivery_mode = mode.value
        session.add(existing)
        forget_moderators(session)
        audit.record(session, list_id=ml.id, actor=actor or email, action="subscribed",
                     target=email, detail=f"role={role.value} delivery={mode.value} (was a "
                                          f"non-member; moderation {existing.moderation or 'default'} kept)")
        return True
    if existing is not None:
        if role is not Role.MEMBER and existing.role != role.value:
            existing.role = role.value
            session.add(existing)
            forget_moderators(session)
            audit.record(session, list_id=ml.id, actor=actor, action="role-changed",
                         target=email, detail=role.value)
        return False
    session.add(Subscription(list_id=ml.id, address_id=addr.id, role=role.value,
                             delivery_mode=mode.value))
    forget_moderators(session)
    audit.record(session, list_id=ml.id, actor=actor or email, action="subscribed",
                 target=email, detail=f"role={role.value} delivery={mode.value}")
    return True


def remove_member(session: Session, ml: MailingList, email: str, *, actor: str = "",
                  via: str = "") -> bool:
    assert ml.id is not None
    sub = find_subscription(session, ml.id, email)
    if sub is None:
        return False
    session.delete(sub)
    forget_moderators(session)
    audit.record(session, list_id=ml.id, actor=actor or email, action="unsubscribed",
                 target=email, detail=f"via {via}" if via else "")
    return True


def moderators(session: Session, list_id: int) -> list[str]:
    """Addresses of the list's moderators and owners, for notices. Read once per transaction
    and list (every held post asks); a change of role or membership here forgets what was read
    (``forget_moderators``), like the bans."""
    by_list: dict[int, list[str]] = per_transaction(session, _MODERATORS)
    known = by_list.get(list_id)
    if known is None:
        known = by_list[list_id] = sorted(session.exec(select(Address.email).join(
            Subscription, col(Subscription.address_id) == col(Address.id)).where(
            Subscription.list_id == list_id,
            col(Subscription.role).in_([Role.MODERATOR.value, Role.OWNER.value]))).all())
    return list(known)


def forget_moderators(session: Session) -> None:
    """A role or membership changed in this session: read the moderators again when asked."""
    session.info.pop(_MODERATORS, None)
