"""The tables. Plain SQLModel classes, no behaviour: decisions live in pure modules.

Invariants:
- Every email address is stored normalised (``addresses.normalise_address``) and appears once
  in ``address``; a person may own several.
- ``message.raw`` holds the bytes exactly as received (plus a Message-ID header, and a Date
  header with the time of receipt, when the sender gave none); parsed columns are derived from
  them and can be rebuilt.
- ``outbox`` rows are the only source of outgoing mail. A row is ``pending`` until a worker
  claims it (``sending``), then ``sent``, ``bounced`` (5xx) or ``failed`` (4xx for longer than
  ``[delivery] give_up_after``).
- Timestamps are timezone-aware UTC (``utcnow``); SQLModel's UTCDateTime refuses naive ones.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(enum.StrEnum):
    NONMEMBER = "nonmember"  # a known sender with a moderation setting; receives nothing
    MEMBER = "member"
    MODERATOR = "moderator"
    OWNER = "owner"


class DeliveryMode(enum.StrEnum):
    EACH = "each"
    PLAIN = "plain"
    MIME = "mime"
    HTML = "html"
    NOMAIL = "nomail"


class Action(enum.StrEnum):
    """What the posting pipeline (or a moderator) does with a post."""

    ACCEPT = "accept"
    HOLD = "hold"
    REJECT = "reject"
    DISCARD = "discard"


class PersonKind(enum.StrEnum):
    MEMBER = "member"
    VENDOR = "vendor"


class MessageStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    HELD = "held"
    REJECTED = "rejected"
    DISCARDED = "discarded"
    ADMIN = "admin"  # administrivia: -request, -confirm, -owner, bounces
    SHUNTED = "shunted"  # processing failed: kept for a person to look at


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    BOUNCED = "bounced"
    FAILED = "failed"


class MailingList(SQLModel, table=True):
    __tablename__ = "mailing_list"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    description: str = ""
    subject_prefix: str = ""  # empty means "[name]"
    nonmember_action: str = Field(default=Action.HOLD.value, max_length=16)
    dmarc_mitigation: str = Field(default="auto", max_length=16)  # auto | always | never
    max_message_bytes: int | None = None  # None: the server's limit
    # The participation policy (listserv/policy.py): who it applies to, which sources count as
    # public (space-separated domains or URL prefixes), and how many own words a pointer has.
    policy_scope: str = Field(default="vendors", max_length=32)
    public_sources: str = ""
    policy_word_limit: int = 60
    emergency: bool = False  # hold every post (incidents)
    max_posts_per_hour: int = 10  # per sender; 0 = no limit
    hold_days: int = 7  # held posts remind the moderators after half, then expire
    expiry_action: str = Field(default=Action.REJECT.value, max_length=16)
    # Digests (digests/): when they go out (a cron expression in the list's time zone).
    digest_schedule: str = Field(default="0 8 * * mon", max_length=64)
    timezone: str = Field(default="Europe/London", max_length=64)
    # Who may read the web archive (listserv/archive_access.py): public | members | private.
    archive: str = Field(default="public", max_length=16,
                         sa_column_kwargs={"server_default": "public"})
    # Bounce processing (listserv/bounce_score.py), Mailman's names and defaults.
    bounce_score_threshold: int = 5
    bounce_info_stale_days: int = 7
    bounce_you_are_disabled_warnings: int = 3
    bounce_you_are_disabled_warnings_interval: int = 7
    bounce_probe: bool = False
    bounce_notify_owner_on_disable: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    display_name: str = ""
    organisation: str = ""
    kind: str = Field(default=PersonKind.MEMBER.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class Address(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=254)
    person_id: int = Field(foreign_key="person.id", index=True)
    verified_at: datetime | None = None


class Subscription(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("list_id", "address_id"),
                      Index("ix_subscription_list_mode", "list_id", "delivery_mode", "id"))
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id")
    address_id: int = Field(foreign_key="address.id", index=True)
    role: str = Field(default=Role.MEMBER.value, max_length=16)
    delivery_mode: str = Field(default=DeliveryMode.EACH.value, max_length=16)
    moderation: str = Field(default="", max_length=16)  # "" = list default, else an Action
    official: bool = False  # posts in an official capacity: the participation policy applies
    # Bounces: the score (decays after bounce_info_stale_days), and delivery disabled at the
    # threshold without touching delivery_mode, so re-enabling restores what the member chose.
    bounce_score: float = 0.0
    last_bounce_at: datetime | None = None
    delivery_disabled_at: datetime | None = None
    warnings_sent: int = 0
    last_warning_at: datetime | None = None
    probe_token: str = Field(default="", max_length=64, index=True)  # "" = no probe out
    created_at: datetime = Field(default_factory=utcnow)


class Thread(SQLModel, table=True):
    # The archive pages threads by latest activity and feeds them by start, both keyset-paged.
    __table_args__ = (Index("ix_thread_list_key", "list_id", "subject_key"),
                      Index("ix_thread_list_last", "list_id", "last_post_at", "id"),
                      Index("ix_thread_list_first", "list_id", "first_post_at", "id"))
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id")
    subject: str = ""
    subject_key: str = Field(default="", max_length=255)
    first_post_at: datetime = Field(default_factory=utcnow)
    last_post_at: datetime = Field(default_factory=utcnow)
    post_count: int = 0
    # The archive's summary, kept current when a post is released (listserv/thread_summary.py):
    # the opening post, a few participants' names (JSON list) and how many people took part.
    opening_pk: int | None = None
    participants: str = Field(default="[]", sa_column_kwargs={"server_default": "[]"})
    participant_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class ThreadRef(SQLModel, table=True):
    """Every Message-ID seen on a list (a post's own, and those it refers to) -> its thread.

    Ids referred to but never received are the "phantom" ancestors that hold a thread together
    when messages arrive out of order or a parent never arrives.
    """

    __tablename__ = "thread_ref"
    list_id: int = Field(foreign_key="mailing_list.id", primary_key=True)
    ref: str = Field(primary_key=True, max_length=998)
    thread_id: int = Field(foreign_key="thread.id", index=True)


class Message(SQLModel, table=True):
    __table_args__ = (Index("ix_message_list_msgid", "list_id", "message_id"),
                      Index("ix_message_list_accepted", "list_id", "accepted_at"))
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: the two above lead with list_id (migration 0023).
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id")
    thread_id: int | None = Field(default=None, foreign_key="thread.id", index=True)
    message_id: str = Field(max_length=998)
    envelope_from: str = ""
    envelope_to: str = ""
    from_address: str = ""
    from_name: str = ""
    subject: str = ""
    date: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)
    # When it went out to the list: on arrival, or when a moderator approved it. Digests pick
    # posts by it; None for posts that were never accepted.
    accepted_at: datetime | None = None
    size: int = 0
    dmarc_policy: str = Field(default="", max_length=16)  # the author domain's, looked up on arrival
    policy: str = ""  # the participation policy's evidence (JSON), when it applied
    # Of a post the policy classed as public domain: the texts later posts are compared with
    # (a JSON list, extracted once when it was stored). None: not extracted (older rows).
    public_texts: str | None = None
    status: str = Field(default=MessageStatus.ACCEPTED.value, max_length=16)
    reason: str = ""
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class InboundMessage(SQLModel, table=True):
    """A message the SMTP door accepted and committed (its 250 sent), waiting for the pipeline
    (``listserv.inbound_queue``): the raw bytes as stored in ``message.raw`` later, and what
    RCPT decided. The row is deleted in the transaction that handles it."""

    __tablename__ = "inbound"
    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(default_factory=utcnow)
    envelope_from: str = ""
    destinations: str = ""  # ``shunt.envelope_to``'s "list:kind[:extra], …"
    dmarc_policy: str = Field(default="", max_length=16)
    urgent: bool = False  # a person's request or a member's post: handled first
    attempts: int = 0  # handlings that raised (``MAX_ATTEMPTS`` then it waits for a person)
    last_error: str = ""
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Held(SQLModel, table=True):
    """A post waiting for a moderator. ``id`` is the number moderators use."""

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    message_pk: int = Field(foreign_key="message.id", unique=True)
    rule: str = ""
    reason: str = ""
    held_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    resolution: str = ""
    resolved_by: str = ""
    reminded_at: datetime | None = None
    token_hash: str = Field(default="", max_length=64, index=True)  # for replies to the notice


class Ban(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id", index=True)
    pattern: str = Field(max_length=254)  # an address, or a regular expression starting with ^
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None


class Pending(SQLModel, table=True):
    """A request waiting for confirmation (double opt-in). Only a hash of the token is kept."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    list_id: int = Field(foreign_key="mailing_list.id")
    email: str = Field(index=True, max_length=254)
    display_name: str = ""
    action: str = Field(max_length=16)  # subscribe | unsubscribe | delivery-… | add-…
    # add-event, add-competition, add-schedule (``listserv.mod_requests``): the checked
    # fields as JSON, created when the moderator's own address confirms.
    payload: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class OutboxPriority(enum.IntEnum):
    """Lower is claimed first: a confirmation never waits behind a 100,000-member fan-out."""

    NOTICE = 0
    BULK = 1


# Only rows that are due or in flight are indexed; sent rows, most of the table, are in neither.
_PENDING, _SENDING = text("state = 'pending'"), text("state = 'sending'")
# Post copies (most rows) have no digest: not indexed, one entry fewer a write (migration 0023).
_HAS_DIGEST = text("digest_id IS NOT NULL")


class Outbox(SQLModel, table=True):
    __table_args__ = (
        Index("ix_outbox_due", "priority", "next_attempt_at",
              sqlite_where=_PENDING, postgresql_where=_PENDING),
        Index("ix_outbox_sending", "claimed_by", sqlite_where=_SENDING, postgresql_where=_SENDING),
        Index("ix_outbox_digest_id", "digest_id", sqlite_where=_HAS_DIGEST,
              postgresql_where=_HAS_DIGEST),
    )
    id: int | None = Field(default=None, primary_key=True)
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id")
    message_pk: int | None = Field(default=None, foreign_key="message.id", index=True)
    digest_id: int | None = Field(default=None, foreign_key="digest_copy.id")
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    recipient: str = Field(max_length=254)
    sender: str = Field(max_length=600)
    state: str = Field(default=OutboxState.PENDING.value, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_by: int | None = None
    last_error: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # Fan-out inserts rows with INSERT … SELECT, which leaves this to the server default.
    priority: int = Field(default=OutboxPriority.BULK.value,
                          sa_column_kwargs={"server_default": str(OutboxPriority.BULK.value)})
    requeued_at: datetime | None = None  # set by 'outbox retry'; the lifetime counts from it


class DigestPeriod(SQLModel, table=True):
    """One digest of one list: the period it covers, recorded once (the unique key is what
    makes a digest go out exactly once, however often its job fires)."""

    __tablename__ = "digest_period"
    __table_args__ = (UniqueConstraint("list_id", "period_end"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    period_start: datetime
    period_end: datetime
    volume: int = 1
    number: int = 1
    threads: int = 0
    posts: int = 0
    copies: int = 0  # outbox rows queued for it
    trigger: str = Field(default="", max_length=32)  # schedule | cli
    created_at: datetime = Field(default_factory=utcnow)


class DigestCopy(SQLModel, table=True):
    """A digest rendered once in one format; each member's copy is personalised when sent."""

    __tablename__ = "digest_copy"
    __table_args__ = (UniqueConstraint("period_id", "fmt"),)
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="digest_period.id", index=True)
    fmt: str = Field(max_length=8)  # plain | mime | html
    # digests/stored.py's versioned JSON (UTF-8), never a pickle: it outlives code upgrades.
    rendered: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SenderNotice(SQLModel, table=True):
    """A held or rejected notice sent to a post's From address: at most one per address per
    day, so forged senders cannot turn the list into a backscatter source
    (``listserv.sender_notices``). Rows older than a day are pruned."""

    __tablename__ = "sender_notice"
    __table_args__ = (Index("ix_sender_notice_address_sent", "address", "sent_at"),)
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=254)
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id")
    kind: str = Field(default="", max_length=16)  # held | rejected
    sent_at: datetime = Field(default_factory=utcnow)


class Bounce(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id", index=True)
    address: str = Field(index=True, max_length=254)
    at: datetime = Field(default_factory=utcnow)
    status: str = ""  # the SMTP reply or DSN status
    source: str = ""  # "smtp" (5xx from the smarthost), "dsn", "flufl", "verp", "probe"
    diagnostic: str = ""  # the receiving server's words, for `commonroom bounces`
    counted: float = 0.0  # what it added to the member's score (0: policy, same day, unknown)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id", index=True)
    actor: str = ""
    action: str = Field(max_length=64)
    target: str = ""
    detail: str = ""


class SiteSetting(SQLModel, table=True):
    __tablename__ = "site_setting"
    key: str = Field(primary_key=True, max_length=64)
    value: str = ""


class Lease(SQLModel, table=True):
    """A named job that one process at a time may run (``listserv.leases``): who holds it and
    until when. A holder renews it well before ``expires_at``; once that is past, anyone may
    take it."""

    __tablename__ = "lease"
    name: str = Field(primary_key=True, max_length=32)
    holder: str = Field(default="", max_length=100)
    expires_at: datetime = Field(default_factory=utcnow)
    taken_at: datetime = Field(default_factory=utcnow)


class DiscordLink(SQLModel, table=True):
    """A Discord account linked to a person (``listserv.discord_links``): one each way."""

    __tablename__ = "discord_link"
    discord_user_id: str = Field(primary_key=True, max_length=20)  # a snowflake, as Discord sends it
    person_id: int = Field(foreign_key="person.id", unique=True)
    linked_at: datetime = Field(default_factory=utcnow)


class DiscordLinkCode(SQLModel, table=True):
    """A one-time code mailed by ``/link``. Only its hash is kept. A request for an address that
    is not a bridged list's member gets a row too (``person_id`` None, no mail), so limits and
    answers are the same whether or not the address is known."""

    __tablename__ = "discord_link_code"
    __table_args__ = (Index("ix_discord_link_code_user_created", "discord_user_id", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    discord_user_id: str = Field(max_length=20)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    email: str = Field(max_length=254)
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    attempts: int = 0  # wrong codes tried against this row
    used_at: datetime | None = None


class DiscordThread(SQLModel, table=True):
    """A list thread and the Discord thread that carries it (``listserv.discord_bridge``): one
    each way. Made by the relay when it opens a Discord thread for a list thread, or by the bot
    when a new Discord thread in a bridged channel becomes a list thread."""

    __tablename__ = "discord_thread"
    thread_id: int = Field(foreign_key="thread.id", primary_key=True)
    discord_thread_id: str = Field(max_length=20, unique=True)  # a snowflake
    channel_id: str = Field(max_length=20)  # the bridged channel it lives in
    created_at: datetime = Field(default_factory=utcnow)


class DiscordPost(SQLModel, table=True):
    """A post written in Discord: the Discord message it came from and the stored message it
    became. Accepted on arrival, it is already in the Discord thread and is not relayed back;
    held and approved later, it is posted back (the bot removed the original)."""

    __tablename__ = "discord_post"
    discord_message_id: str = Field(primary_key=True, max_length=20)
    message_pk: int = Field(foreign_key="message.id", unique=True)
    discord_thread_id: str = Field(max_length=20)
    discord_user_id: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=utcnow)


class DiscordRelayState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # Discord refused it for good (4xx other than 429); kept for the log


class DiscordRelay(SQLModel, table=True):
    """What the bot must write in Discord, durable and in order (``id``): a list post to relay
    into its thread (``kind`` "post", ``message_pk``), a message for a channel (``kind``
    "channel", ``channel_id`` and ``content``, such as the digest summary), a private message
    (``kind`` "dm", ``channel_id`` holding the Discord user's id), an event's card and
    scheduled event (``kind`` "event-announce" | "event-change" | "event-cancel",
    ``event_id``), or a competition's card (``kind`` "comp-card" | "comp-closed",
    ``competition_id``). ``parts_sent`` counts the pieces already written, so a retry never
    writes one twice."""

    __tablename__ = "discord_relay"
    __table_args__ = (Index("ix_discord_relay_due", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int | None = Field(default=None, foreign_key="mailing_list.id", index=True)
    kind: str = Field(default="post", max_length=16)  # post | channel | dm | event-*
    message_pk: int | None = Field(default=None, foreign_key="message.id", unique=True)
    event_id: int | None = Field(default=None, foreign_key="event.id")  # the event-* kinds
    competition_id: int | None = Field(default=None, foreign_key="competition.id")  # comp-*
    channel_id: str = Field(default="", max_length=20)
    content: str = ""
    state: str = Field(default=DiscordRelayState.PENDING.value, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    parts_sent: int = 0
    discord_message_ids: str = ""  # space-separated, as written
    last_error: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # The relay worker writing the row now ("" when none): a second worker skips it.
    claimed_by: str = Field(default="", max_length=64)


class SearchText(SQLModel, table=True):
    """The text an accepted post is found by (``listserv.search``): one row per post, written
    when it is released or imported. The index over it is each backend's own and not a model:
    on SQLite the FTS5 table ``search_fts`` (this table is its external content, triggers keep
    it current), on PostgreSQL the ``tsv`` column and its GIN index (migration 0010;
    over accent-folded text since 0018, ``listserv.accents``; NULL until
    ``listserv.search_behind`` fills it since 0024).
    """

    __tablename__ = "search_text"
    message_pk: int = Field(foreign_key="message.id", primary_key=True,
                            sa_column_kwargs={"autoincrement": False})
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    subject: str = ""
    body: str = ""  # the author's own words (listserv.search.document)
    author: str = ""  # "Name <address>"
class ScheduledState(enum.StrEnum):
    ACTIVE = "active"
    DONE = "done"  # a one-off post that went out, or a recurrence past its end
    CANCELLED = "cancelled"


class ScheduledPost(SQLModel, table=True):
    """A post to send later through the pipeline (``listserv.scheduled_posts``): once at
    ``next_at``, or on every occurrence of ``rule`` (a recurrence in the list's time zone).
    ``next_at`` only moves forward, in the transaction that posts, so an occurrence goes out once."""

    __tablename__ = "scheduled_post"
    __table_args__ = (Index("ix_scheduled_post_due", "state", "next_at"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    from_address: str = Field(max_length=254)
    subject: str = ""
    body: str = ""
    rule: str = Field(default="", max_length=128)  # "" = once
    next_at: datetime
    last_sent_at: datetime | None = None  # the occurrence last sent (its scheduled time)
    sent_count: int = 0
    state: str = Field(default=ScheduledState.ACTIVE.value, max_length=16)
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class CompetitionState(enum.StrEnum):
    OPEN = "open"
    DRAWN = "drawn"  # claimed atomically by the one draw (state open -> drawn)
    CANCELLED = "cancelled"


class Competition(SQLModel, table=True):
    """A prize draw among those who reply in the announcement's thread
    (``listserv.competitions``). ``seed`` stays secret until the draw; its SHA-256,
    ``commitment``, is published when the competition opens."""

    __table_args__ = (Index("ix_competition_due", "state", "closes_at"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id", index=True)
    prize: str = ""
    how_to_enter: str = ""
    closes_at: datetime
    reserves: int = 0
    exclude_org: str = ""
    seed: str = Field(max_length=64)  # 32 random bytes, hex
    commitment: str = Field(max_length=64)  # SHA-256 of the seed bytes, hex
    message_pk: int | None = Field(default=None, foreign_key="message.id")  # the announcement
    thread_id: int | None = Field(default=None, foreign_key="thread.id", index=True)
    state: str = Field(default=CompetitionState.OPEN.value, max_length=16)
    drawn_at: datetime | None = None
    entrants: str = ""  # as published at the draw: a JSON list of labels, in entry order
    picks: str = ""  # as published: JSON list of indexes into entrants, winner then reserves
    current: int = 0  # which pick is the winner now (0; 1 after the first reserve is drawn)
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class CompetitionEntry(SQLModel, table=True):
    """One entry per person (the first accepted reply in the thread counts)."""

    __tablename__ = "competition_entry"
    __table_args__ = (UniqueConstraint("competition_id", "person_id"),)
    id: int | None = Field(default=None, primary_key=True)
    competition_id: int = Field(foreign_key="competition.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    address: str = Field(max_length=254)
    message_pk: int | None = Field(default=None, foreign_key="message.id")
    entered_at: datetime = Field(default_factory=utcnow)
class EventState(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Event(SQLModel, table=True):
    """A meeting a list's moderators announce (``listserv.events``). Times are UTC; ``timezone``
    is the zone the organisers gave, for showing and for the calendar file. ``reminded_at`` is
    set in the transaction that queues the day-before reminders, so they go once."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_list_starts", "list_id", "starts_at"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="mailing_list.id")
    uid: str = Field(max_length=128, unique=True)  # the iCalendar UID, stable across changes
    title: str = Field(max_length=200)
    starts_at: datetime
    ends_at: datetime
    timezone: str = Field(default="Europe/London", max_length=64)
    location: str = ""  # a place or an online link
    booking_url: str = ""
    capacity: int | None = None  # None: no limit
    description: str = ""
    state: str = Field(default=EventState.SCHEDULED.value, max_length=16)
    sequence: int = 0  # iCalendar SEQUENCE: raised by each change
    message_pk: int | None = Field(default=None, foreign_key="message.id")  # the announcement
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    reminded_at: datetime | None = None
    # The Discord scheduled event the bot made for it ("" when none: not bridged, not
    # permitted, or not written yet), so a change or cancellation reaches it too.
    discord_event_id: str = Field(default="", max_length=20)


class AttendeeState(enum.StrEnum):
    ATTENDING = "attending"
    WAITING = "waiting"


class EventAttendee(SQLModel, table=True):
    """One person coming to (or waiting for a place at) an event; the waiting list is in ``id``
    order. Leaving deletes the row (the audit log keeps the history)."""

    __tablename__ = "event_attendee"
    __table_args__ = (UniqueConstraint("event_id", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="event.id", index=True)
    email: str = Field(max_length=254)
    state: str = Field(default=AttendeeState.ATTENDING.value, max_length=16)
    via: str = Field(default="", max_length=16)  # web | email | discord | cli
    created_at: datetime = Field(default_factory=utcnow)
