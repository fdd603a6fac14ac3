"""Competitions: a prize drawn among the members who reply in the announcement's thread
(entries: ``listserv.competition_entries``), in a way anyone can check afterwards.

The draw, exactly (``pick``):
- At the start a random 32-byte seed is stored and SHA-256(seed), the commitment, is published
  in the announcement (hex). The seed stays secret until the draw.
- At the draw the entrants are listed in the order they entered (time of the entering post,
  then entry number), numbered from 1, and published with the seed (hex).
- h = HMAC-SHA256(key=seed, message=str(competition id) in ASCII), read as a big-endian
  unsigned integer. The winner is entrant number (h mod N) + 1 of the N entrants. That entrant
  is taken off the list, and the first reserve is chosen by the same rule on the remaining
  N-1 (index h mod (N-1) into what is left, in the same order), and so on for each reserve.

Invariants:
- The draw happens once: ``draw`` claims the competition with ``UPDATE … SET state='drawn'
  WHERE state='open'`` and does everything (results, the public post, the winner's notice) in
  that transaction; a second scheduler, a restart or a missed closing time finds nothing to do.
- What was published (``entrants``, ``picks``) is stored as published; ``verify`` recomputes
  the picks from the seed and that list and checks the list against the entries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import textwrap
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from listserv import audit, discord_events, notices, outbox, posting
from listserv.addresses import Kind
from listserv.bodytext import first_text
from listserv.config import Config
from listserv.lists import list_info
from listserv.message import parse
from listserv.models import (
    Address,
    Competition,
    CompetitionEntry,
    CompetitionState,
    MailingList,
    Message,
    MessageStatus,
    Person,
    utcnow,
)
from listserv.store import Store

log = logging.getLogger("commonroom.competitions")

HOW_TO_ENTER = ("Reply to this post (by email, or in its Discord thread) to enter. One entry "
                "per person, however many times you reply; members of the list only.")
CLAIM_DAYS = 7  # the winner is asked to answer within this; then a reserve may be drawn


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def pick(seed: bytes, competition_id: int, entrants: int, count: int) -> list[int]:
    """Indexes (0-based, into the published list) of the winner then the reserves."""
    h = int.from_bytes(hmac.new(seed, str(competition_id).encode("ascii"),
                                hashlib.sha256).digest(), "big")
    remaining = list(range(entrants))
    return [remaining.pop(h % len(remaining)) for _ in range(min(count, entrants))]


def label(address: str) -> str:
    """How an entrant is published: enough to recognise oneself, not to harvest addresses."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}...@{domain}"


def entries(session: Session, competition_id: int) -> list[CompetitionEntry]:
    return list(session.exec(select(CompetitionEntry).where(
        CompetitionEntry.competition_id == competition_id)
        .order_by(col(CompetitionEntry.entered_at), col(CompetitionEntry.id))).all())


def _local(at: datetime, tz: str) -> str:
    return f"{at.astimezone(ZoneInfo(tz)):%A %d %B %Y, %H:%M %Z}"


def _bracketed(message_id: str) -> str:
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _list_post(session: Session, cfg: Config, ml: MailingList, subject: str, body: str, *,
               reply_to: Message | None = None) -> Message:
    """A post by the list itself (announcement, result): stored and released to the members
    and the bridged Discord thread. Not judged by the rules: a moderator's tool speaking."""
    assert ml.id is not None
    info = list_info(ml, cfg)
    mail = EmailMessage(policy=notices.WIRE)
    mail["From"] = formataddr((f"{ml.name} list", info.address(Kind.OWNER)))
    mail["To"] = info.post_address
    mail["Reply-To"] = info.post_address
    mail["Subject"] = subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid(domain=cfg.server.domain)
    if reply_to is not None:
        mail["In-Reply-To"] = _bracketed(reply_to.message_id)
        mail["References"] = _bracketed(reply_to.message_id)
    # Short lines, so the seed and commitment stay whole in the raw text people may search.
    mail.set_content("\n".join(textwrap.fill(line, 76, break_long_words=False) if line else ""
                               for line in body.splitlines()) + "\n")
    raw = mail.as_bytes()
    parsed = parse(raw, domain=cfg.server.domain)
    msg = Message(list_id=ml.id, message_id=parsed.message_id,
                  envelope_from=info.address(Kind.BOUNCES), envelope_to=info.post_address,
                  from_address=info.address(Kind.OWNER), from_name=parsed.from_name,
                  subject=parsed.subject, date=parsed.date, size=parsed.size,
                  status=MessageStatus.ACCEPTED.value, reason="competition", raw=raw)
    session.add(msg)
    session.flush()
    posting.release(session, cfg, ml, msg, parsed)
    return msg


def start(session: Session, cfg: Config, ml: MailingList, *, prize: str, closes_at: datetime,
          now: datetime, how_to_enter: str = "", reserves: int = 0, exclude_org: str = "",
          actor: str = "", discord_channel: str = "") -> Competition:
    """Open a competition and announce it to the list (with the commitment), and in Discord
    with an Enter card (the bridged channel, else ``discord_channel``)."""
    assert ml.id is not None
    if closes_at <= now:
        raise ValueError(f"the closing time {_local(closes_at, ml.timezone)} has passed")
    seed = secrets.token_bytes(32)
    comp = Competition(list_id=ml.id, prize=prize, how_to_enter=how_to_enter or HOW_TO_ENTER,
                       closes_at=closes_at, reserves=reserves, exclude_org=exclude_org,
                       seed=seed.hex(), commitment=commitment(seed), created_by=actor)
    session.add(comp)
    session.flush()
    assert comp.id is not None
    lines = [f"Win {prize}!", "", comp.how_to_enter,
             f"Entries close {_local(closes_at, ml.timezone)}; then one winner"
             + (f" and {reserves} reserve(s)" if reserves else "") + " are drawn at random.", ""]
    if exclude_org:
        lines += [f"Staff of {exclude_org} cannot enter.", ""]
    lines += [f"Competition {comp.id}. How the draw can be checked: the SHA-256 of the secret "
              "seed is", "", comp.commitment, "", "At the draw the seed and the numbered "
              "entrants are published; the winner is entrant number (HMAC-SHA256(seed, "
              f"\"{comp.id}\") mod N) + 1 of N, each reserve by the same rule on those left."]
    msg = _list_post(session, cfg, ml, f"Competition: win {prize}", "\n".join(lines) + "\n")
    comp.message_pk, comp.thread_id = msg.id, msg.thread_id
    session.add(comp)
    discord_events.queue_competition(session, cfg, ml, comp, discord_events.COMP_CARD,
                                     channel_id=discord_channel)
    audit.record(session, list_id=ml.id, actor=actor or "cli", action="competition-started",
                 target=str(comp.id), detail=f"{prize}; closes {closes_at.isoformat()}")
    log.info("competition %s started on %s", comp.id, ml.name,
             extra={"list": ml.name, "competition": comp.id})
    return comp


@dataclass(frozen=True)
class Drawn:
    competition_id: int
    entrants: int
    winner: str | None  # the address
    reserves: tuple[str, ...]


def _person_name(session: Session, address: str) -> str:
    person = session.exec(select(Person).join(Address, col(Address.person_id) == col(Person.id))
                          .where(Address.email == address)).first()
    return person.display_name if person and person.display_name else label(address)


def _tell_winner(session: Session, cfg: Config, comp: Competition, address: str,
                 ml: MailingList) -> None:
    """By mail, and by Discord DM when the address's person has linked a Discord account."""
    info = list_info(ml, cfg)
    body = (f"Congratulations: you won {comp.prize} in the {ml.name} competition "
            f"(number {comp.id}).\n\nTo claim it, reply to {info.address(Kind.OWNER)} within "
            f"{CLAIM_DAYS} days; after that the moderators may draw a reserve.\n")
    mail = notices._base(info, address, f"You won: {comp.prize}", body,
                         from_addr=info.address(Kind.OWNER))
    outbox.enqueue_notice(session, list_id=ml.id, recipient=address,
                          sender=info.address(Kind.BOUNCES), payload=mail.as_bytes())
    discord_events.queue_dm(session, cfg, ml.id, address, f"**You won {comp.prize}!** "
                            f"(competition {comp.id} on {ml.name}) To claim it, email "
                            f"{info.address(Kind.OWNER)} within {CLAIM_DAYS} days.")


def _announcement(session: Session, comp: Competition) -> Message | None:
    return session.get(Message, comp.message_pk) if comp.message_pk else None


def draw(session: Session, cfg: Config, competition_id: int, *, now: datetime,
         actor: str = "scheduler") -> Drawn | None:
    """Draw the winner and reserves, publish them and tell the winner. None: it was not open
    (drawn already, or cancelled)."""
    claimed = session.execute(update(Competition).where(
        col(Competition.id) == competition_id,
        col(Competition.state) == CompetitionState.OPEN.value).values(
        state=CompetitionState.DRAWN.value, drawn_at=now))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    comp = session.get(Competition, competition_id)
    assert comp is not None and comp.id is not None
    session.refresh(comp)
    ml = session.get(MailingList, comp.list_id)
    assert ml is not None
    people = [e.address for e in entries(session, comp.id)]
    published = [label(a) for a in people]
    picks = pick(bytes.fromhex(comp.seed), comp.id, len(people), 1 + comp.reserves)
    comp.entrants, comp.picks = json.dumps(published, ensure_ascii=False), json.dumps(picks)
    session.add(comp)
    if picks:
        winner = people[picks[0]]
        result = [f"The winner of {comp.prize} is {_person_name(session, winner)} "
                  f"(entrant {picks[0] + 1}, {published[picks[0]]})."]
        result += [f"Reserve {i}: entrant {p + 1}, {published[p]}."
                   for i, p in enumerate(picks[1:], 1)]
        _tell_winner(session, cfg, comp, winner, ml)
    else:
        result = [f"Nobody entered, so {comp.prize} was not won."]
    body = "\n".join([
        *result, "", "Seed:", comp.seed, "Its SHA-256, published when the competition opened:",
        comp.commitment, "", f"Entrants, in the order they entered ({len(people)}):",
        *[f"{i}. {name}" for i, name in enumerate(published, 1)], "",
        f"Check it: HMAC-SHA256(seed, \"{comp.id}\") as a big-endian number, mod {len(people)}, "
        "plus one, is the winner's number; each reserve by the same rule on those left "
        f"(or run 'commonroom competitions verify {comp.id}')."]) + "\n"
    announced = _announcement(session, comp)
    subject = (f"Re: {announced.subject}" if announced else f"Competition {comp.id}: the draw")
    _list_post(session, cfg, ml, subject, body, reply_to=announced)
    discord_events.queue_competition(session, cfg, ml, comp, discord_events.COMP_CLOSED)
    audit.record(session, list_id=ml.id, actor=actor, action="competition-drawn",
                 target=str(comp.id), detail=f"{len(people)} entrants; picks {comp.picks}")
    log.info("competition %s drawn: %d entrants", comp.id, len(people),
             extra={"list": ml.name, "competition": comp.id})
    return Drawn(comp.id, len(people), people[picks[0]] if picks else None,
                 tuple(people[p] for p in picks[1:]))


def draw_due(store: Store, cfg: Config, now: datetime | None = None) -> list[Drawn]:
    """Draw every open competition whose closing time has come, each in its own transaction."""
    now = now or utcnow()
    with store.session() as s:
        due = list(s.exec(select(Competition.id).where(
            Competition.state == CompetitionState.OPEN.value,
            col(Competition.closes_at) <= now)).all())
    done: list[Drawn] = []
    for competition_id in due:
        assert competition_id is not None
        try:
            with store.session() as s:
                drawn = draw(s, cfg, competition_id, now=now)
        except Exception:  # one failing draw must not stop the others; tried again next minute
            log.exception("drawing competition %s failed", competition_id,
                          extra={"competition": competition_id})
            continue
        if drawn is not None:
            done.append(drawn)
    return done


def draw_reserve(session: Session, cfg: Config, comp: Competition, *,
                 actor: str = "cli") -> str | None:
    """The winner did not answer: the next reserve wins. Returns their address, or None when
    there is no reserve left (or no draw yet)."""
    assert comp.id is not None
    picks: list[int] = json.loads(comp.picks or "[]")
    if comp.state != CompetitionState.DRAWN.value or comp.current + 1 >= len(picks):
        return None
    people = [e.address for e in entries(session, comp.id)]
    comp.current += 1
    session.add(comp)
    address = people[picks[comp.current]]
    ml = session.get(MailingList, comp.list_id)
    assert ml is not None
    _tell_winner(session, cfg, comp, address, ml)
    announced = _announcement(session, comp)
    _list_post(session, cfg, ml, f"Re: {announced.subject}" if announced else "Competition",
               f"The winner did not claim {comp.prize}, so it goes to reserve {comp.current}: "
               f"{_person_name(session, address)} (entrant {picks[comp.current] + 1}, "
               f"{label(address)}).\n", reply_to=announced)
    audit.record(session, list_id=ml.id, actor=actor, action="competition-reserve",
                 target=str(comp.id), detail=f"reserve {comp.current}")
    return address


def cancel(session: Session, cfg: Config, competition_id: int, *, actor: str) -> bool:
    """Call off an open competition (claimed like a draw, so it cannot also be drawn) and say
    so in its thread. False: it was not open."""
    claimed = session.execute(update(Competition).where(
        col(Competition.id) == competition_id,
        col(Competition.state) == CompetitionState.OPEN.value).values(
        state=CompetitionState.CANCELLED.value))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    comp = session.get(Competition, competition_id)
    assert comp is not None
    session.refresh(comp)
    ml = session.get(MailingList, comp.list_id)
    assert ml is not None
    announced = _announcement(session, comp)
    _list_post(session, cfg, ml, f"Re: {announced.subject}" if announced else "Competition",
               f"The competition for {comp.prize} is cancelled: there will be no draw.\n",
               reply_to=announced)
    discord_events.queue_competition(session, cfg, ml, comp, discord_events.COMP_CLOSED)
    audit.record(session, list_id=ml.id, actor=actor, action="competition-cancelled",
                 target=str(comp.id))
    return True


def open_ones(session: Session, list_id: int) -> list[Competition]:
    """The list's open competitions, closing soonest first."""
    return list(session.exec(select(Competition).where(
        Competition.list_id == list_id, Competition.state == CompetitionState.OPEN.value)
        .order_by(col(Competition.closes_at), col(Competition.id))).all())


@dataclass(frozen=True)
class Verification:
    ok: bool
    checks: tuple[tuple[bool, str], ...]


def verify(session: Session, comp: Competition) -> Verification:
    """Recompute the draw from the published seed and entrant list; check the list is the
    entries as recorded and the commitment the one announced."""
    assert comp.id is not None
    if comp.state != CompetitionState.DRAWN.value:
        return Verification(False, ((False, f"competition {comp.id} is {comp.state}, "
                                            "not drawn yet"),))
    seed = bytes.fromhex(comp.seed)
    published: list[str] = json.loads(comp.entrants or "[]")
    picks: list[int] = json.loads(comp.picks or "[]")
    announced = _announcement(session, comp)
    recorded = [label(e.address) for e in entries(session, comp.id)]
    again = pick(seed, comp.id, len(published), 1 + comp.reserves)
    checks = (
        (commitment(seed) == comp.commitment,
         "the seed's SHA-256 is the commitment"),
        (announced is not None and comp.commitment in first_text(announced.raw),
         "the commitment is in the announcement"),
        (published == recorded,
         f"the published list ({len(published)}) is the entries as recorded ({len(recorded)})"),
        (again == picks,
         f"the winner and reserves recomputed from the seed and the list: "
         f"{[p + 1 for p in again]} (published {[p + 1 for p in picks]})"),
    )
    return Verification(all(ok for ok, _ in checks), checks)


def enter_linked(session: Session, competition_id: int, discord_user_id: str, *,
                 now: datetime) -> str:
    """A linked Discord account enters (the Enter button); what to tell them."""
    from listserv import competition_entries, discord_links
    from listserv.competition_entries import Entry

    comp = session.get(Competition, competition_id)
    ml = session.get(MailingList, comp.list_id) if comp else None
    if comp is None or ml is None:
        return f"There is no competition {competition_id}."
    address = discord_links.linked_address(session, discord_user_id, ml)
    if address is None:
        return (f"Only members of {ml.name} can enter. If you are one, link your Discord "
                "account first with /link.")
    outcome = competition_entries.enter_address(session, ml, comp, address, at=now)
    return {Entry.ENTERED: f"You are entered for {comp.prize}. Good luck!",
            Entry.DUPLICATE: "You have already entered: one entry each.",
            Entry.CLOSED: "Sorry, this competition has closed.",
            Entry.EXCLUDED: f"Sorry, staff of {comp.exclude_org} cannot enter this one.",
            }.get(outcome, f"Sorry, you cannot enter: {outcome.value}.")
