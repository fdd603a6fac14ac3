"""What each member receives for a post: the stored message, decorated once, personalised per row.

Invariants:
- ``PostRenderer`` is the ``render(message_pk, recipient)`` callback of the outbox worker: a cache
  miss reads the post once from the store and prepares it; every further member of the same
  post costs one HMAC and one bytes concatenation.
- The From rewrite for DMARC is decided here from the policy recorded when the post arrived
  and the list's setting, so a held post approved days later is sent the same way. A policy
  recorded as "unknown" (DNS failed on arrival) is looked up again here and, once known,
  stored on the post; a post still unknown is sent unmunged and prepared again after
  ``RETRY_UNKNOWN`` seconds, not for the rest of its fan-out.
- Preparing reads the store in a read-only session: on SQLite it never takes the write lock,
  so it cannot stall the SMTP door (or wait for it) while a post is being accepted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy import update
from sqlmodel import col, select

from listserv import links, names
from listserv.addresses import Kind
from listserv.config import Config
from listserv.decorate import Author, ListInfo, PreparedPost, prepare
from listserv.dmarc import Policy, needs_munging
from listserv.lists import list_info
from listserv.models import Address, Event, MailingList, Message, Person, PersonKind
from listserv.store import Store
from listserv.subscriptions import find_subscription

CACHE_POSTS = 64
RETRY_UNKNOWN = 60.0  # seconds a post prepared without a known DMARC policy stays cached


class PostRenderer:
    def __init__(self, store: Store, cfg: Config, *,
                 dmarc: Callable[[str], Policy] | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.secret = store.secret()
        self.dmarc = dmarc  # a blocking domain -> Policy, for posts stored as "unknown"
        # message pk -> (prepared, info, monotonic time it stops being good or None)
        self._cache: OrderedDict[int, tuple[PreparedPost, ListInfo, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, message_pk: int, recipient: str) -> bytes:
        prepared, info = self.prepared(message_pk)
        url = links.unsubscribe_url(info.web_base_url, self.secret, info.name, recipient)

        def token_for(purpose: str) -> str:
            return links.unsubscribe_token(self.secret, info.name, recipient, purpose)
        return prepared.for_recipient(url, info.address(Kind.LEAVE), token_for)

    def prepared(self, message_pk: int) -> tuple[PreparedPost, ListInfo]:
        with self._lock:
            hit = self._cache.get(message_pk)
            if hit is not None and (hit[2] is None or hit[2] > time.monotonic()):
                self._cache.move_to_end(message_pk)
                return hit[0], hit[1]
        prepared, info, known = self._prepare(message_pk)
        with self._lock:
            self._cache[message_pk] = (prepared, info,
                                       None if known else time.monotonic() + RETRY_UNKNOWN)
            while len(self._cache) > CACHE_POSTS:
                self._cache.popitem(last=False)
        return prepared, info

    def _policy(self, message_pk: int, stored: str, author: str) -> Policy:
        """The post's DMARC policy; an "unknown" one is looked up again and kept if found."""
        policy = Policy(stored) if stored else Policy.NONE
        if policy is not Policy.UNKNOWN or self.dmarc is None or "@" not in author:
            return policy
        policy = self.dmarc(author.rsplit("@", 1)[1])
        if policy is not Policy.UNKNOWN:
            with self.store.session() as s:
                s.execute(update(Message).where(col(Message.id) == message_pk,
                                                col(Message.dmarc_policy) == Policy.UNKNOWN.value)
                          .values(dmarc_policy=policy.value))
        return policy

    def _prepare(self, message_pk: int) -> tuple[PreparedPost, ListInfo, bool]:
        with self.store.read_session() as s:
            msg = s.get(Message, message_pk)
            if msg is None or msg.list_id is None:
                raise LookupError(f"message {message_pk} is not a stored post")
            ml = s.get(MailingList, msg.list_id)
            assert ml is not None
            row = s.exec(select(Person).join(Address).where(
                Address.email == msg.from_address)).first()
            sub = find_subscription(s, ml.id or 0, msg.from_address) if msg.from_address else None
            author = Author(address=msg.from_address or msg.envelope_from,
                            # Cleaned again: rows stored before names were cleaned on entry.
                            name=names.clean((row.display_name if row else "") or msg.from_name),
                            organisation=names.clean(row.organisation if row else ""),
                            is_vendor=bool(row and row.kind == PersonKind.VENDOR.value),
                            official=bool(sub and sub.official))
            stored, raw, sender = msg.dmarc_policy, msg.raw, msg.from_address
            # Only a post the list wrote itself (an event's announcement) is personalised.
            personal = s.exec(select(Event.id).where(Event.message_pk == message_pk)).first()
            mitigation = ml.dmarc_mitigation
            info = list_info(ml, self.cfg)
        # Outside the read: a lookup may wait for DNS, and keeping the post needs a write.
        policy = self._policy(message_pk, stored, sender)
        munge = needs_munging(policy, mitigation)
        return (prepare(raw, info, author, munge_from=munge, personalise=personal is not None),
                info,
                policy is not Policy.UNKNOWN)
