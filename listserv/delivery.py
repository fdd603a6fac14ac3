"""What each member receives for a post: the stored message, decorated once, personalised per row.

Invariants:
- ``PostRenderer`` is the ``render(message_pk, recipient)`` callback of the outbox worker: a cache
  miss reads the post once from the store and prepares it; every further member of the same
  post costs one HMAC and one bytes concatenation.
- The From rewrite for DMARC is decided here from the policy recorded when the post arrived
  and the list's setting, so a held post approved days later is sent the same way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlmodel import select

from listserv import links, names
from listserv.config import Config
from listserv.decorate import Author, ListInfo, PreparedPost, prepare
from listserv.dmarc import Policy, needs_munging
from listserv.lists import list_info
from listserv.models import Address, MailingList, Message, Person, PersonKind
from listserv.store import Store
from listserv.subscriptions import find_subscription

CACHE_POSTS = 64


class PostRenderer:
    def __init__(self, store: Store, cfg: Config) -> None:
        self.store = store
        self.cfg = cfg
        self.secret = store.secret()
        self._cache: OrderedDict[int, tuple[PreparedPost, ListInfo]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, message_pk: int, recipient: str) -> bytes:
        prepared, info = self.prepared(message_pk)
        url = links.unsubscribe_url(info.web_base_url, self.secret, info.name, recipient)
        return prepared.for_recipient(url, info.address("leave"))

    def prepared(self, message_pk: int) -> tuple[PreparedPost, ListInfo]:
        with self._lock:
            hit = self._cache.get(message_pk)
            if hit is not None:
                self._cache.move_to_end(message_pk)
                return hit
        made = self._prepare(message_pk)
        with self._lock:
            self._cache[message_pk] = made
            while len(self._cache) > CACHE_POSTS:
                self._cache.popitem(last=False)
        return made

    def _prepare(self, message_pk: int) -> tuple[PreparedPost, ListInfo]:
        with self.store.session() as s:
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
            policy = Policy(msg.dmarc_policy) if msg.dmarc_policy else Policy.NONE
            info = list_info(ml, self.cfg)
            munge = needs_munging(policy, ml.dmarc_mitigation)
            return prepare(msg.raw, info, author, munge_from=munge), info
