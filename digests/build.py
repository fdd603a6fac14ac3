"""Gather a digest from the store: the posts accepted in a period, grouped by thread.

Only accepted posts appear (held, rejected and discarded ones never do), in the period in which
they went out (``Message.accepted_at``: on arrival, or when a moderator approved them). The thread summary is
the opening post's own words (quotes, signatures and footers stripped by the same code the
participation policy uses), cut to about 60 words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from digests import upcoming
from digests.model import Digest, DigestPost, DigestThread, Participant, UpcomingItem, summarise
from listserv import events, links, quotes
from listserv.addresses import list_address
from listserv.config import Config
from listserv.message import first_text
from listserv.models import (
    Address,
    MailingList,
    Message,
    MessageStatus,
    Person,
    PersonKind,
    Role,
    Subscription,
    Thread,
)

# Later issues (events, competitions) register what is coming up on a list here; a source's
# links may be site-relative ("/lists/..."), collect() puts the site in front.
UpcomingSource = Callable[[Session, MailingList, datetime], list[UpcomingItem]]
UPCOMING_SOURCES: list[UpcomingSource] = [upcoming.open_competitions,  # H8
                                           upcoming.scheduled_posts]


def coming_events(session: Session, ml: MailingList, end: datetime) -> list[UpcomingItem]:
    """The list's events that have not ended by the end of the digest's period, each linking
    to its announcement's thread in the archive (``listserv.events``)."""
    found: list[UpcomingItem] = []
    base = ""  # site-relative
    for event in events.upcoming(session, ml.id or 0, end):
        announced = session.get(Message, event.message_pk) if event.message_pk else None
        url = (links.thread_url(base, ml.name, announced.thread_id)
               if announced is not None and announced.thread_id is not None else "")
        found.append(UpcomingItem(title=event.title, when=event.starts_at, url=url,
                                  detail=event.location))
    return found


UPCOMING_SOURCES.append(coming_events)  # events (H7)


def _participants(session: Session, emails: set[str]) -> dict[str, Participant]:
    rows = session.exec(select(Address.email, Person).join(
        Person, col(Person.id) == col(Address.person_id)).where(col(Address.email).in_(emails))).all()
    return {email: Participant(name=p.display_name, email=email, organisation=p.organisation,
                               vendor=p.kind == PersonKind.VENDOR.value) for email, p in rows}


def opening_summary(raw: bytes) -> str:
    return summarise(quotes.own_words(first_text(raw)))


def collect(session: Session, ml: MailingList, cfg: Config, start: datetime, end: datetime, *,
            volume: int, number: int) -> Digest:
    assert ml.id is not None
    # By the time a post went out, not when it arrived: one held over the end of a period and
    # approved later belongs to the next digest (``accepted_at``, set by posting.release).
    posts = session.exec(select(Message).where(
        Message.list_id == ml.id, Message.status == MessageStatus.ACCEPTED.value,
        col(Message.accepted_at) >= start, col(Message.accepted_at) < end)
        .order_by(col(Message.accepted_at), col(Message.id))).all()
    people = _participants(session, {m.from_address for m in posts if m.from_address})
    by_thread: dict[int, list[Message]] = {}
    for m in posts:
        by_thread.setdefault(m.thread_id or -(m.id or 0), []).append(m)
    threads: list[DigestThread] = []
    for thread_id, members in by_thread.items():
        row = session.get(Thread, thread_id) if thread_id > 0 else None
        first_at = row.first_post_at if row is not None else members[0].accepted_at or start
        opening = members[0]
        if row is not None and first_at < start:  # the thread began before: summarise its start
            opening = session.exec(select(Message).where(
                Message.thread_id == thread_id, Message.status == MessageStatus.ACCEPTED.value)
                .order_by(col(Message.received_at), col(Message.id)).limit(1)).first() or opening
        authors: dict[str, Participant] = {}
        for m in members:
            who = people.get(m.from_address) or Participant(name=m.from_name, email=m.from_address)
            if not who.name and m.from_name:
                who = Participant(m.from_name, who.email, who.organisation, who.vendor)
            authors.setdefault(who.email, who)
        digest_posts = tuple(
            DigestPost(message_id=m.message_id, subject=m.subject,
                       author=authors.get(m.from_address) or Participant(m.from_name, m.from_address),
                       date=m.date or m.received_at, raw=m.raw) for m in members)
        threads.append(DigestThread(
            subject=(row.subject if row is not None and row.subject else members[0].subject),
            url=links.thread_url(cfg.server.web_base_url, ml.name, thread_id) if thread_id > 0
            else links.archive_url(cfg.server.web_base_url, ml.name),
            participants=tuple(authors.values()), new_posts=len(members),
            is_new=first_at >= start, summary=opening_summary(opening.raw), posts=digest_posts))
    new_members = int(session.execute(sa_select(func.count()).select_from(Subscription).where(
        col(Subscription.list_id) == ml.id, col(Subscription.role) != Role.NONMEMBER.value,
        col(Subscription.created_at) >= start, col(Subscription.created_at) < end)).scalar_one())
    # Sources give site-relative links ("/lists/..."): made absolute here, where the site is known.
    site = cfg.server.web_base_url.rstrip("/")
    upcoming = tuple(replace(item, url=site + item.url) if item.url.startswith("/") else item
                     for source in UPCOMING_SOURCES for item in source(session, ml, end))
    return Digest(list_name=ml.name, list_address=list_address(ml.name, cfg.server.domain),
                  description=ml.description, period_start=start, period_end=end, volume=volume,
                  number=number, threads=tuple(threads), upcoming=upcoming,
                  new_members=new_members,
                  archive_url=links.archive_url(cfg.server.web_base_url, ml.name),
                  tz=ml.timezone)
