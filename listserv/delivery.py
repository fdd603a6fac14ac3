"""What each member receives for a post: the stored message, decorated once, personalised per row.

Invariants:
- ``PostRenderer`` is the ``render(message_pk, recipient)`` callback of the outbox worker: a cache
  miss reads the post once from the store and prepares it; every further member of the same
  post costs one HMAC and one bytes concatenation. A copy made of a wire-ready post (CRLF
  lines, no leading dot: ``transports.wire_ready``, checked once per post) and personal lines
  that are wire-ready too is handed over as ``transports.WireReady``, so the transport does not
  scan all of it again.
- The From rewrite for DMARC is decided here from the policy recorded when the post arrived
  and the list's setting, so a held post approved days later is sent the same way. A policy
  recorded as "unknown" (DNS failed on arrival) is looked up again here and, once known,
  stored on the post; a post still unknown is sent unmunged and prepared again after
  ``RETRY_UNKNOWN`` seconds, not for the rest of its fan-out.
- Preparing reads the store in one read-only statement: on SQLite it never takes the write
  lock, so it cannot stall the SMTP door (or wait for it) while a post is being accepted.
- A post is prepared once however many sender threads miss the cache together: the others
  wait for that preparation (and try themselves if it failed).
- ``cached`` renders a copy only from the cache (``None`` on a miss), never touching the store:
  cheap enough for the event loop, so the worker hops to a thread only on a miss.
- ``warm`` prepares posts ahead (the worker calls it in the thread that claimed their rows),
  but never one whose policy would need a DNS lookup: that one is left to its first copy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    select,
    update,
)
from sqlmodel import SQLModel, col

from listserv import authors, links
from listserv.addresses import Kind
from listserv.config import Config
from listserv.decorate import ListInfo, PreparedPost, personal_lines, prepare
from listserv.dmarc import Policy, needs_munging
from listserv.lists import info_of
from listserv.models import Address, Event, MailingList, Message, Person, Subscription
from listserv.store import PLAN_EACH_TIME, Store, among_ints
from listserv.transports import WireReady, wire_ready

CACHE_POSTS = 64
RETRY_UNKNOWN = 60.0  # seconds a post prepared without a known DMARC policy stays cached


class _Cached(NamedTuple):
    prepared: PreparedPost
    info: ListInfo
    until: float | None  # the monotonic time it stops being good; None: never
    ready: bool  # ``prepared.body`` is wire-ready (``transports.wire_ready``)
    # The personal lines before and after the member's unsubscribe token
    # (``decorate.personal_lines``), the same for every copy.
    before: bytes
    after: bytes
    # Every copy is wire-ready: the body and those lines are (a token is base64url and a dot,
    # mid-line: it cannot make them otherwise). Not for a post with member-token markers.
    copies_ready: bool


class PostRenderer:
    def __init__(self, store: Store, cfg: Config, *,
                 dmarc: Callable[[str], Policy] | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.secret = store.secret()
        self._signer = links.TokenSigner(self.secret)
        self.dmarc = dmarc  # a blocking domain -> Policy, for posts stored as "unknown"
        # Reads of one statement each: they never take SQLite's write lock (as
        # Store.read_session), and on PostgreSQL run in autocommit (one round trip, not three).
        self._reader = store.one_statement(read_only=True)
        self._posts = _POSTS_ANY if store.is_postgres else _POSTS
        self._cache: OrderedDict[int, _Cached] = OrderedDict()  # by message pk
        self._lock = threading.Lock()
        self._preparing: dict[int, threading.Event] = {}  # message pk -> set once prepared

    def __call__(self, message_pk: int, recipient: str) -> bytes:
        return self._copy(self._prepared(message_pk), recipient)

    def cached(self, message_pk: int, recipient: str) -> bytes | None:
        """That member's copy if the post is prepared and still good, else None: no store
        read, no DNS, one HMAC and a join (the worker calls it on the event loop)."""
        with self._lock:
            hit = self._fresh(message_pk)
        return None if hit is None else self._copy(hit, recipient)

    def _copy(self, post: _Cached, recipient: str) -> bytes:
        prepared, info = post.prepared, post.info
        if not prepared.purposes:  # the bytes for_recipient makes, from the per-post parts
            copy = b"".join((post.before, self._signer.token(info.name, recipient).encode(),
                             post.after, prepared.body))
            return WireReady(copy) if post.copies_ready else copy
        url = links.unsubscribe_url(info.web_base_url, self.secret, info.name, recipient)

        def token_for(purpose: str) -> str:
            return links.unsubscribe_token(self.secret, info.name, recipient, purpose)
        copy = prepared.for_recipient(url, info.address(Kind.LEAVE), token_for)
        return WireReady(copy) if post.ready and ready_before(copy, prepared.body) else copy

    def _fresh(self, message_pk: int) -> _Cached | None:
        """The cached post, if still good (call with the lock held)."""
        hit = self._cache.get(message_pk)
        if hit is None or (hit.until is not None and hit.until <= time.monotonic()):
            return None
        self._cache.move_to_end(message_pk)
        return hit

    def warm(self, message_pks: Sequence[int]) -> None:
        """Prepare these posts into the cache, skipping those cached or being prepared and
        those whose DMARC policy would have to be looked up (DNS may take seconds: the
        caller claims rows for the senders). A post that fails is left to its first copy,
        whose render fails and says why. The posts are read in one statement (a read each
        cost as much as preparing the post)."""
        mine: dict[int, threading.Event] = {}
        with self._lock:
            for pk in message_pks:
                if self._fresh(pk) is None and pk not in self._preparing and pk not in mine:
                    mine[pk] = self._preparing[pk] = threading.Event()
        try:
            if not mine:
                return
            with self._reader.connect() as conn:
                rows = conn.execute(self._posts, {"pks": list(mine)}).all()
            for row in rows:
                try:
                    done = self._finish(row.pk, row, lookup=False)
                    if done is not None:
                        self._keep(row.pk, done)
                except Exception:
                    pass  # the copy's own render prepares it again, and reports what failed
                finally:
                    self._done_preparing(row.pk, mine.pop(row.pk))
        finally:
            for pk, busy in mine.items():  # not read, or the read failed
                self._done_preparing(pk, busy)

    def prepared(self, message_pk: int) -> tuple[PreparedPost, ListInfo]:
        post = self._prepared(message_pk)
        return post.prepared, post.info

    def _prepared(self, message_pk: int) -> _Cached:
        while True:
            with self._lock:
                hit = self._fresh(message_pk)
                if hit is not None:
                    return hit
                busy = self._preparing.get(message_pk)
                if busy is None:
                    busy = self._preparing[message_pk] = threading.Event()
                    break
            busy.wait()  # another thread prepares it; then look again (it may have failed)
        try:
            done = self._prepare(message_pk)
            assert done is not None  # it may look the policy up
            return self._keep(message_pk, done)
        finally:
            self._done_preparing(message_pk, busy)

    def _keep(self, message_pk: int, done: tuple[PreparedPost, ListInfo, bool]) -> _Cached:
        prepared, info, known = done
        ready = wire_ready(prepared.body)
        before, after = personal_lines(links.unsubscribe_base(info.web_base_url, info.name),
                                       info.address(Kind.LEAVE))
        post = _Cached(prepared, info, None if known else time.monotonic() + RETRY_UNKNOWN,
                       ready, before, after,
                       ready and not prepared.purposes and personal_ready(before, after))
        with self._lock:
            self._cache[message_pk] = post
            while len(self._cache) > CACHE_POSTS:
                self._cache.popitem(last=False)
        return post

    def _done_preparing(self, message_pk: int, busy: threading.Event) -> None:
        with self._lock:
            del self._preparing[message_pk]
        busy.set()

    def _needs_lookup(self, stored: str, author: str) -> bool:
        return stored == Policy.UNKNOWN.value and self.dmarc is not None and "@" in author

    def _policy(self, message_pk: int, stored: str, author: str) -> Policy:
        """The post's DMARC policy; an "unknown" one is looked up again and kept if found."""
        policy = Policy(stored) if stored else Policy.NONE
        if not self._needs_lookup(stored, author):
            return policy
        assert self.dmarc is not None
        policy = self.dmarc(author.rsplit("@", 1)[1])
        if policy is not Policy.UNKNOWN:
            with self.store.session() as s:
                s.execute(update(Message).where(col(Message.id) == message_pk,
                                                col(Message.dmarc_policy) == Policy.UNKNOWN.value)
                          .values(dmarc_policy=policy.value))
        return policy

    def _prepare(self, message_pk: int, *, lookup: bool = True
                 ) -> tuple[PreparedPost, ListInfo, bool] | None:
        """The post prepared, its list, and whether its DMARC policy is known; None when
        ``lookup`` is False and the policy would have to be looked up."""
        with self._reader.connect() as conn:
            row = conn.execute(_POST, {"pk": message_pk}).first()
        if row is None:
            raise LookupError(f"message {message_pk} is not a stored post")
        return self._finish(message_pk, row, lookup)

    def _finish(self, message_pk: int, row: Row[Any], lookup: bool
                ) -> tuple[PreparedPost, ListInfo, bool] | None:
        """``_prepare`` from the post's row (``_post_statement``'s)."""
        if not lookup and self._needs_lookup(row.dmarc_policy, row.from_address):
            return None
        person = None if row.kind is None else (row.display_name, row.organisation, row.kind)
        author = authors.author(row.from_address, row.envelope_from, row.from_name, person,
                                bool(row.official))
        info = info_of(row.name, row.description, row.subject_prefix, self.cfg)
        # Outside the read: a lookup may wait for DNS, and keeping the post needs a write.
        policy = self._policy(message_pk, row.dmarc_policy, row.from_address)
        munge = needs_munging(policy, row.dmarc_mitigation)
        # Only a post the list wrote itself (an event's announcement) is personalised.
        return (prepare(row.raw, info, author, munge_from=munge, personalise=bool(row.personal)),
                info,
                policy is not Policy.UNKNOWN)


def personal_ready(before: bytes, after: bytes) -> bool:
    """Whether ``before + token + after`` is ``wire_ready`` for every token of base64url
    characters and dots (``links.unsubscribe_token``'s): ``before`` holds no line end, so the
    token is mid-line and cannot start one or end one. Pure."""
    return b"\r" not in before and b"\n" not in before and wire_ready(before + after)


def ready_before(copy: bytes, body: bytes) -> bool:
    """Whether ``copy`` is personal lines that are ``wire_ready`` before ``body``, so it is
    wire-ready when ``body`` is (complete CRLF lines, the first not a dot, then ``body``'s).
    Pure; scans the personal lines alone (and compares ``body``)."""
    head = len(copy) - len(body)
    return head > 0 and copy.endswith(body) and wire_ready(copy[:head])


def _post_statement(where: ColumnElement[bool]) -> Select[Any]:
    """Everything preparing a post reads, in one statement (the ORM's five reads cost more
    Python than the preparation itself): the post, its list, its sender's person and
    subscription (``authors.author_of``'s reads), and whether an event announces it."""
    msg, ml = table(Message), table(MailingList)
    addr, person, sub, event = table(Address), table(Person), table(Subscription), table(Event)
    # author_of looks no one up for a post without a From address.
    sender = and_(addr.c.email == msg.c.from_address, msg.c.from_address != "")
    return (select(msg.c.id.label("pk"), msg.c.raw, msg.c.from_address, msg.c.from_name, msg.c.envelope_from,
                   msg.c.dmarc_policy, ml.c.name, ml.c.description, ml.c.subject_prefix,
                   ml.c.dmarc_mitigation, person.c.display_name, person.c.organisation,
                   person.c.kind, sub.c.official,
                   exists().where(event.c.message_pk == msg.c.id).label("personal"))
            .select_from(msg.join(ml, ml.c.id == msg.c.list_id)
                         .outerjoin(addr, sender)
                         .outerjoin(person, person.c.id == addr.c.person_id)
                         .outerjoin(sub, and_(sub.c.address_id == addr.c.id,
                                              sub.c.list_id == msg.c.list_id)))
            .where(where))


def table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


_POST = _post_statement(table(Message).c.id == bindparam("pk"))
_POSTS = _post_statement(table(Message).c.id.in_(bindparam("pks", expanding=True)))
# PostgreSQL's: one parameter and one text however many posts (an expanded IN is rendered
# anew for each call). Planned each time: the server chose to anyway (its generic plan looked
# dearer), and a plan kept from when the tables were small would scan them whole.
_POSTS_ANY = _post_statement(among_ints(table(Message).c.id, "pks")).execution_options(
    **{PLAN_EACH_TIME: True})
