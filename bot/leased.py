"""The bot in whichever ``serve`` (or ``commonroom bot``) process holds the "discord-bot" lease:
one gateway session and one relay worker for all the processes sharing a store.

Invariants:
- ``bot`` is the connected bot while this process holds the lease, else None.
- A bot whose gateway connection gave up is stopped and the lease released, for another
  process (or this one, a little later) to try.
- ``start`` fails with ``BotStartupError`` only when this process took the lease at once and
  the bot could not start; a process that waits starts the bot when it takes over, and logs
  (rather than raises) what stops it then (``listserv.leadership``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.context import BotContext
from listserv.leadership import Leadership

BOT_LEASE = "discord-bot"

if TYPE_CHECKING:  # discord.py is imported when the bot runs
    from bot.client import CommonroomBot


class LeasedBot:
    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx
        self.bot: CommonroomBot | None = None
        self.lease = Leadership(ctx.store, BOT_LEASE, "the Discord bot",
                                begin=self._begin, end=self._end, alive=self._alive)

    async def start(self) -> None:
        await self.lease.start()

    async def stop(self) -> None:
        await self.lease.stop()

    async def _begin(self) -> None:
        from bot import client

        self.bot = await client.start(self.ctx)

    def _alive(self) -> bool:
        """False once the gateway connection gave up (a close code that forbids reconnecting)."""
        runner = self.bot.runner if self.bot is not None else None
        return runner is None or not runner.done()

    async def _end(self) -> None:
        bot, self.bot = self.bot, None
        if bot is not None:
            await bot.stop()
