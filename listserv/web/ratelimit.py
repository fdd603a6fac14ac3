"""A sliding-window rate limiter kept in memory, for requests per client IP.

Why in memory: a client's requests reach one ``serve`` process (behind one proxy), the limit
only has to slow abuse down, and it needs no table or migration. It is lost on restart, and
with N processes a client gets up to N times the limit; the limit that protects mailboxes
(confirmation mails per address per day) is in the store (``subscriptions.request``) and holds
across processes and doors.

Invariants: thread-safe (routes run in a thread pool); memory is bounded by ``max_keys`` (the
keys seen longest ago are forgotten first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimiter:
    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one request for ``key``; False when it is over the limit (it still counts)."""
        now = self.clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            hits.append(now)
            self._hits[key] = hits  # most recently seen last
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return len(hits) <= self.limit
