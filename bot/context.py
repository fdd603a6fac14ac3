"""What the cogs need from the process: the configuration, the store, and a way to wake the
outbox worker after committing mail (absent when the bot runs alone: the server's worker then
finds the rows at its next poll)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from listserv.config import Config
from listserv.store import Store


@dataclass(frozen=True)
class BotContext:
    cfg: Config
    store: Store
    wake_outbox: Callable[[], None] | None = None

    def mail_queued(self) -> None:
        if self.wake_outbox is not None:
            self.wake_outbox()
