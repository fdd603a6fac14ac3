"""What is coming up on a list, for the digest's "Coming up" section: open competitions (until
they close) and scheduled posts due within the next fortnight. Sources are plain queries with
the signature ``build.UpcomingSource``; ``build.UPCOMING_SOURCES`` lists them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from digests.model import UpcomingItem
from listserv.models import (
    Competition,
    CompetitionState,
    MailingList,
    ScheduledPost,
    ScheduledState,
)

SCHEDULED_AHEAD = timedelta(days=14)


def open_competitions(session: Session, ml: MailingList, now: datetime) -> list[UpcomingItem]:
    rows = session.exec(select(Competition).where(
        Competition.list_id == ml.id, Competition.state == CompetitionState.OPEN.value,
        col(Competition.closes_at) > now)).all()
    return [UpcomingItem(title=f"Competition: win {c.prize}", when=c.closes_at,
                         detail="closes then; reply to the announcement to enter")
            for c in rows]


def scheduled_posts(session: Session, ml: MailingList, now: datetime) -> list[UpcomingItem]:
    rows = session.exec(select(ScheduledPost).where(
        ScheduledPost.list_id == ml.id, ScheduledPost.state == ScheduledState.ACTIVE.value,
        col(ScheduledPost.next_at) > now, col(ScheduledPost.next_at) <= now + SCHEDULED_AHEAD)
    ).all()
    return [UpcomingItem(title=p.subject, when=p.next_at, detail="a scheduled post")
            for p in rows]
