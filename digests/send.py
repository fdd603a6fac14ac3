"""Send a list's digest for one period, exactly once.

Invariants:
- The digest is built and rendered in a read-only transaction (no write lock held while that
  takes seconds); then one short transaction records the period (unique per list and period
  end), stores the digest rendered once per format, and queues one outbox row per digest
  member (INSERT … SELECT, no member passes through Python). A second run for the same
  period, from a double-fired job or a restart, finds the period recorded (or loses the race
  on the unique key) and sends nothing.
- When the list is bridged to Discord and ``[discord] digest_channel_id`` is set, a short
  summary (``digests/summary.py``) is queued for that channel in the same transaction as the
  copies (``discord_bridge.queue_channel_message``): posted once, exactly when a digest is sent.
- After the commit, delivery is the outbox's: a restart half-way resumes the pending rows and
  never re-sends the ones already sent.
- Each member's copy is personalised at send time (``DigestRenderer``) from the stored render,
  kept as data (``digests/stored.py``: versioned JSON), so it survives an upgrade of the code.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr, make_msgid

from sqlalchemy import exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digests import build, periods, render, stored
from digests.model import Digest
from digests.summary import summary_text
from listserv import discord_bridge, links
from listserv.addresses import Kind, list_address
from listserv.config import Config
from listserv.decorate import list_headers
from listserv.fanout import queue_for_members
from listserv.lists import find, list_info
from listserv.models import DeliveryMode, DigestCopy, DigestPeriod, MailingList, Subscription, utcnow
from listserv.store import Store

log = logging.getLogger("commonroom.digests")

FORMATS = {DeliveryMode.PLAIN: "plain", DeliveryMode.MIME: "mime", DeliveryMode.HTML: "html"}
CACHE_COPIES = 8


class UnknownList(LookupError):
    pass


@dataclass(frozen=True)
class Outcome:
    recorded: bool  # a new period was recorded by this call
    queued: int  # copies queued
    message: str
    period_id: int | None = None


def send_scheduled(store: Store, cfg: Config, list_name: str, *, now: datetime) -> Outcome:
    """The digest for the period ending at the schedule's latest time at or before ``now``."""
    with store.session() as s:
        ml = _list(s, list_name)
        end = periods.latest_fire(ml.digest_schedule, ml.timezone, now)
    if end is None:
        return Outcome(False, 0, "no scheduled digest time has passed yet")
    return send_period(store, cfg, list_name, end=end, trigger="schedule")


def send_period(store: Store, cfg: Config, list_name: str, *, end: datetime,
                trigger: str) -> Outcome:
    # Build and render in a read-only transaction (on SQLite it does not hold the write lock,
    # so posts keep arriving), then record and queue in a short write transaction.
    with store.read_session() as s:
        plan = _plan(s, cfg, _list(s, list_name), end)
    if isinstance(plan, Outcome):
        return plan
    try:
        with store.session() as s:
            return _record(s, cfg, _list(s, list_name), plan, trigger)
    except IntegrityError:  # another process recorded this period between our check and commit
        return Outcome(False, 0, f"the digest of {list_name} for the period ending "
                                 f"{end:%Y-%m-%d %H:%M} UTC was sent by another run")


def _list(session: Session, name: str) -> MailingList:
    ml = find(session, name)
    if ml is None:
        raise UnknownList(f"there is no list called '{name}'")
    return ml


def previous_period(session: Session, list_id: int) -> DigestPeriod | None:
    return session.exec(select(DigestPeriod).where(DigestPeriod.list_id == list_id)
                        .order_by(col(DigestPeriod.period_end).desc()).limit(1)).first()


def next_digest(session: Session, cfg: Config, ml: MailingList, now: datetime, *,
                since: datetime | None = None) -> Digest:
    """The list's next digest as it stands at ``now`` (a preview: nothing is recorded).
    ``since``: the start of the period; default the end of the last digest, else a week ago."""
    assert ml.id is not None
    previous = previous_period(session, ml.id)
    start = since or periods.period_start(previous.period_end if previous else None, now)
    volume, number = periods.volume_and_number(
        (previous.volume, previous.number, previous.period_end) if previous else None, now)
    return build.collect(session, ml, cfg, start, now, volume=volume, number=number)


def _modes_wanted(session: Session, list_id: int) -> list[DeliveryMode]:
    return [mode for mode in FORMATS if session.exec(select(exists().where(
        col(Subscription.list_id) == list_id, col(Subscription.delivery_mode) == mode.value,
        col(Subscription.delivery_disabled_at).is_(None)))).one()]


@dataclass(frozen=True)
class _Plan:
    previous_id: int | None
    digest: Digest
    rendered: dict[DeliveryMode, bytes]  # stored.dump of the render, per format wanted


def _already(ml: MailingList, previous: DigestPeriod | None, end: datetime) -> Outcome | None:
    if previous is None or previous.period_end < end:
        return None
    same = previous.period_end == end
    return Outcome(False, 0, f"the digest of {ml.name} for the period ending "
                             f"{end:%Y-%m-%d %H:%M} UTC was "
                             f"{'already sent' if same else 'covered by a later digest'}")


def _plan(session: Session, cfg: Config, ml: MailingList, end: datetime) -> _Plan | Outcome:
    assert ml.id is not None
    previous = previous_period(session, ml.id)
    done = _already(ml, previous, end)
    if done is not None:
        return done
    start = periods.period_start(previous.period_end if previous else None, end)
    volume, number = periods.volume_and_number(
        (previous.volume, previous.number, previous.period_end) if previous else None, end)
    digest = build.collect(session, ml, cfg, start, end, volume=volume, number=number)
    rendered = {mode: stored.dump(render.render(digest, FORMATS[mode]))
                for mode in (_modes_wanted(session, ml.id) if digest.threads else [])}
    return _Plan(previous.id if previous else None, digest, rendered)


def _record(session: Session, cfg: Config, ml: MailingList, plan: _Plan, trigger: str) -> Outcome:
    assert ml.id is not None
    digest = plan.digest
    previous = previous_period(session, ml.id)
    done = _already(ml, previous, digest.period_end)
    if done is not None:
        return done
    if (previous.id if previous else None) != plan.previous_id:  # a digest was sent meanwhile
        return Outcome(False, 0, f"another digest of {ml.name} was recorded while this one was "
                                 "built; the next run covers the rest")
    period = DigestPeriod(list_id=ml.id, period_start=digest.period_start,
                          period_end=digest.period_end, volume=digest.volume,
                          number=digest.number, threads=len(digest.threads),
                          posts=sum(t.new_posts for t in digest.threads), trigger=trigger)
    session.add(period)
    session.flush()  # the unique key: a concurrent run for the same period fails here or at commit
    assert period.id is not None
    context = {"list": ml.name, "period_id": period.id, "volume": digest.volume,
               "number": digest.number}
    if not digest.threads:
        log.info("digest of %s: no posts since %s, nothing sent", ml.name, digest.period_start,
                 extra=context)
        return Outcome(True, 0, f"no posts in {ml.name} since {digest.period_start:%Y-%m-%d %H:%M} "
                                "UTC: period recorded, nothing sent", period.id)
    queued = 0
    for mode in _modes_wanted(session, ml.id):  # a member may have switched format meanwhile
        rendered = plan.rendered.get(mode) or stored.dump(render.render(digest, FORMATS[mode]))
        copy = DigestCopy(period_id=period.id, fmt=FORMATS[mode], rendered=rendered)
        session.add(copy)
        session.flush()
        assert copy.id is not None
        queued += queue_for_members(session, ml, cfg.server.domain, mode, digest_id=copy.id)
    period.copies = queued
    session.add(period)
    if discord_bridge.bridged_channel(cfg, ml.name):  # only lists whose threads Discord shows
        discord_bridge.queue_channel_message(session, ml.id, cfg.discord.digest_channel_id,
                                             summary_text(digest))
    log.info("digest of %s vol %d issue %d: %d threads, %d posts, %d copies queued", ml.name,
             digest.volume, digest.number, period.threads, period.posts, queued, extra=context)
    return Outcome(True, queued, f"digest of {ml.name} (vol {digest.volume}, issue "
                                 f"{digest.number}, {period.threads} threads, {period.posts} "
                                 f"posts) queued for {queued} members", period.id)


class DigestRenderer:
    """``render_digest(copy_id, recipient)`` for the outbox worker: one member's copy."""

    def __init__(self, store: Store, cfg: Config) -> None:
        self.store = store
        self.cfg = cfg
        self.secret = store.secret()
        self._cache: OrderedDict[int, tuple[render.Rendered, str, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def _load(self, copy_id: int) -> tuple[render.Rendered, str, dict[str, str]]:
        with self._lock:
            hit = self._cache.get(copy_id)
            if hit is not None:
                return hit
        with self.store.session() as s:
            copy = s.get(DigestCopy, copy_id)
            if copy is None:
                raise LookupError(f"digest copy {copy_id} is not in the store")
            period = s.get(DigestPeriod, copy.period_id)
            assert period is not None
            ml = s.get(MailingList, period.list_id)
            assert ml is not None
            info = list_info(ml, self.cfg)
            rendered = stored.load(copy.rendered)
            # Like Mailman: from the -request address, replies go to the list.
            headers = {"From": formataddr((f"{ml.description or ml.name} digest",
                                           info.address(Kind.REQUEST))),
                       "Reply-To": info.post_address, **list_headers(info)}
            made = (rendered, ml.name, headers)
        with self._lock:
            self._cache[copy_id] = made
            while len(self._cache) > CACHE_COPIES:
                self._cache.popitem(last=False)
        return made

    def __call__(self, copy_id: int, recipient: str) -> bytes:
        rendered, list_name, headers = self._load(copy_id)
        base = self.cfg.server.web_base_url
        member = render.MemberLinks(
            email=recipient,
            unsubscribe_url=links.unsubscribe_url(base, self.secret, list_name, recipient),
            delivery_url=links.delivery_url(base, self.secret, list_name, recipient))
        leave = list_address(list_name, self.cfg.server.domain, Kind.LEAVE)
        personal = {**headers,
                    "List-Unsubscribe": f"<{member.unsubscribe_url}>, <mailto:{leave}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    "Date": format_datetime(utcnow()),
                    "Message-ID": make_msgid("digest", domain=self.cfg.server.domain)}
        return render.personalise(rendered, member, personal)

