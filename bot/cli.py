"""``commonroom bot``: run the Discord bot alone, without SMTP, delivery or the scheduler (the
mail its commands queue is sent by the 'commonroom serve' process's outbox worker). Like
``serve``, it runs the bot only while it holds the bot's lease (bot/leased.py), so several may
run: one at a time connects, another takes over when it stops."""

from __future__ import annotations

import asyncio
import contextlib
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
        # Stop on a signal, or when the connection gives up (a bad close code).
        while not stop.is_set():
            bot = leased.bot
            if bot is not None and bot.runner is not None and bot.runner.done():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
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
