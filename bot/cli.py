"""``commonroom bot``: run the Discord bot alone, without SMTP, delivery or the scheduler (the
mail its commands queue is sent by the 'commonroom serve' process's outbox worker)."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from bot.startup import BotStartupError
from listserv import logsetup
from listserv.cli_common import Ctx, pass_ctx
from listserv.config import Config
from listserv.store import Store


async def _run(cfg: Config, store: Store) -> None:
    # discord.py is imported only when the bot runs: every other command starts faster.
    from bot import client
    from bot.context import BotContext

    bot = await client.start(BotContext(cfg, store))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    assert bot.runner is not None
    try:
        # Stop on a signal, or when the connection gives up (a bad close code).
        await asyncio.wait({asyncio.create_task(stop.wait()), bot.runner},
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        await bot.stop()


@click.command("bot")
@pass_ctx
def bot_command(obj: Ctx) -> None:
    """Run the Discord bot alone ('commonroom serve' runs it too when [discord] token is set)."""
    logsetup.configure(obj.verbose, level=logging.INFO)
    with obj.open_store() as store:
        try:
            asyncio.run(_run(obj.cfg, store))
        except BotStartupError as e:
            raise click.ClickException(f"the Discord bot cannot start: {e}") from None
