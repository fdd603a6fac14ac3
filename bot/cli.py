"""``commonroom bot``: run the Discord bot alone, without SMTP, delivery or the scheduler (the
mail its commands queue is sent by the 'commonroom serve' process's outbox worker). Like
``serve``, it runs the bot only while it holds the bot's lease (bot/leased.py), so several may
run: one at a time connects, another takes over when it stops."""

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
    from bot.context import BotContext
    from bot.leased import LeasedBot

    leased = LeasedBot(BotContext(cfg, store))
    await leased.start()  # runs the bot now, or once the process running it stops
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # Until a signal. A connection that gives up (a bad close code) hands the bot to
        # another process, or to this one again a little later (listserv/leadership.py).
        await stop.wait()
    finally:
        await leased.stop()


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
