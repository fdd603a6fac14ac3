"""``/metrics`` in Prometheus text format, read when it is scraped.

What is counted where:
- Posts by outcome come from the audit log (``post-*`` on arrival, ``held-*`` by moderators),
  which is kept for good: one GROUP BY over small rows, the same answer from every process.
- Deliveries (sent, retried, bounced, failed) are this process's outbox worker's tallies since
  it started: sent rows are pruned from the store after ``keep_sent_days``, so counting them
  there would make a counter go down. Prometheus sums the processes and handles restarts.
- Outbox depth and the age of the oldest due row use the partial indexes on pending rows;
  held posts waiting and digest runs are small tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import Session, col

from listserv.models import (
    AuditEntry,
    Bounce,
    DigestPeriod,
    Held,
    InboundMessage,
    Outbox,
    OutboxState,
    utcnow,
)
from listserv.web.context import WebContext

# Audit actions -> the post outcome they count as.
POST_OUTCOMES: Mapping[str, str] = {
    "post-accept": "accepted", "held-accept": "accepted", "post-hold": "held",
    "post-reject": "rejected", "held-reject": "rejected",
    "post-discard": "discarded", "held-discard": "discarded",
}
DELIVERY_OUTCOMES = ("sent", "retried", "bounced", "failed")


@dataclass(frozen=True)
class StoreFacts:
    posts: Mapping[str, int]
    held_waiting: int
    outbox: Mapping[str, int]  # pending, sending
    due: int
    oldest_due_age: float  # seconds; 0 when nothing is due
    digest_runs: Mapping[str, int] = field(default_factory=dict)  # by trigger
    bounces: int = 0
    inbound: int = 0  # accepted messages the pipeline has not handled yet


def read_facts(session: Session, now: datetime) -> StoreFacts:
    posts = dict.fromkeys(sorted(set(POST_OUTCOMES.values())), 0)
    for action, n in session.execute(
            select(col(AuditEntry.action), func.count()).where(
                col(AuditEntry.action).in_(list(POST_OUTCOMES))).group_by(col(AuditEntry.action))):
        posts[POST_OUTCOMES[action]] += n
    held = session.execute(select(func.count()).select_from(Held).where(
        col(Held.resolved_at).is_(None))).scalar_one()
    state = col(Outbox.state)
    outbox = {s.value: session.execute(select(func.count()).select_from(Outbox).where(
        state == s.value)).scalar_one() for s in (OutboxState.PENDING, OutboxState.SENDING)}
    due, oldest = session.execute(select(func.count(), func.min(col(Outbox.next_attempt_at))).where(
        state == OutboxState.PENDING.value, col(Outbox.next_attempt_at) <= now)).one()
    runs: dict[str, int] = {trigger: n for trigger, n in session.execute(
        select(col(DigestPeriod.trigger), func.count()).group_by(col(DigestPeriod.trigger)))}
    bounces = session.execute(select(func.count()).select_from(Bounce)).scalar_one()
    inbound = session.execute(select(func.count()).select_from(InboundMessage)).scalar_one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # SQLite keeps UTC times without their zone
    age = (now - oldest).total_seconds() if oldest else 0.0
    return StoreFacts(posts, held, outbox, due, max(age, 0.0), runs, bounces, inbound)


class _Collector(Collector):
    def __init__(self, facts: StoreFacts, deliveries: Mapping[str, int]) -> None:
        self.facts = facts
        self.deliveries = deliveries

    def collect(self) -> Iterator[Metric]:
        f = self.facts
        posts = CounterMetricFamily("commonroom_posts", "Posts by outcome (arrival decisions "
                                    "and moderators' decisions on held posts)", labels=["outcome"])
        for outcome, n in f.posts.items():
            posts.add_metric([outcome], n)
        yield posts
        yield GaugeMetricFamily("commonroom_held_posts_waiting",
                                "Held posts waiting for a moderator", value=f.held_waiting)
        deliveries = CounterMetricFamily("commonroom_deliveries", "Delivery attempts by outcome, "
                                         "by this process since it started", labels=["outcome"])
        for outcome in DELIVERY_OUTCOMES:
            deliveries.add_metric([outcome], self.deliveries.get(outcome, 0))
        yield deliveries
        rows = GaugeMetricFamily("commonroom_outbox_rows", "Outbox rows not yet sent",
                                 labels=["state"])
        for state, n in f.outbox.items():
            rows.add_metric([state], n)
        yield rows
        yield GaugeMetricFamily("commonroom_outbox_due_rows", "Pending outbox rows due now",
                                value=f.due)
        yield GaugeMetricFamily("commonroom_outbox_oldest_due_age_seconds",
                                "How long the oldest due outbox row has been due",
                                value=f.oldest_due_age)
        runs = CounterMetricFamily("commonroom_digest_runs", "Digests made, by what started them",
                                   labels=["trigger"])
        for trigger, n in sorted(f.digest_runs.items()):
            runs.add_metric([trigger or "unknown"], n)
        yield runs
        yield CounterMetricFamily("commonroom_bounces", "Bounces recorded (SMTP 5xx and DSNs)",
                                  value=f.bounces)
        yield GaugeMetricFamily("commonroom_inbound_waiting", "Accepted messages (answered 250) "
                                "not handled yet", value=f.inbound)


def exposition(context: WebContext) -> bytes:
    """The metrics page, read now (runs in a worker thread)."""
    with context.store.read_session() as s:
        facts = read_facts(s, utcnow())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(facts, dict(context.delivery_counts())))
    return generate_latest(registry)
