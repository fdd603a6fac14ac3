"""What the web routes need from the process that serves them.

Invariants:
- Routes reach the store and configuration only through ``WebContext`` (``ctx(request)``),
  never through globals, so a test can serve two sites in one process.
- ``probes`` are the process's own parts (SMTP listening, scheduler alive) as named checks that
  return a problem in words or None; the store is checked by ``/healthz`` itself.
- A route that queued mail calls ``wake_outbox`` after its transaction committed (it is
  thread-safe), so a confirmation goes out at once rather than at the worker's next poll.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request

from listserv.config import Config
from listserv.store import Store
from listserv.web.ratelimit import RateLimiter

SUBSCRIBE_PER_IP = 10  # subscribe posts per client IP per window (web/subscribe.py)
SUBSCRIBE_WINDOW = 3600.0
Probe = Callable[[], str | None]  # a problem in words, or None when the part is well


@dataclass
class WebContext:
    cfg: Config
    store: Store
    probes: Mapping[str, Probe] = field(default_factory=dict)
    wake_outbox: Callable[[], None] = lambda: None
    # This process's delivery outcomes since start ("sent", "retried", "bounced", "failed").
    delivery_counts: Callable[[], Mapping[str, int]] = dict
    subscribe_limiter: RateLimiter = field(
        default_factory=lambda: RateLimiter(SUBSCRIBE_PER_IP, SUBSCRIBE_WINDOW))
    signin_limiter: RateLimiter = field(  # sign-in links asked for, per client IP
        default_factory=lambda: RateLimiter(SUBSCRIBE_PER_IP, SUBSCRIBE_WINDOW))

    @cached_property
    def secret(self) -> bytes:
        """The site secret signing unsubscribe and delivery links (read once; never changes)."""
        return self.store.secret()


def ctx(request: Request) -> WebContext:
    """The context of the app serving ``request`` (a FastAPI dependency)."""
    found = request.app.state.ctx
    assert isinstance(found, WebContext)
    return found


Ctx = Annotated[WebContext, Depends(ctx)]  # a route's parameter: ``def page(context: Ctx)``
