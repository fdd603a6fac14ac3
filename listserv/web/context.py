"""What the web routes need from the process that serves them.

Invariants:
- Routes reach the store and configuration only through ``WebContext`` (``ctx(request)``),
  never through globals, so a test can serve two sites in one process.
- ``probes`` are the process's own parts (SMTP listening, scheduler alive) as named checks that
  return a problem in words or None; the store is checked by ``/healthz`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request

from listserv.config import Config
from listserv.store import Store

Probe = Callable[[], str | None]  # a problem in words, or None when the part is well


@dataclass
class WebContext:
    cfg: Config
    store: Store
    probes: Mapping[str, Probe] = field(default_factory=dict)

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
