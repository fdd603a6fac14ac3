"""The server with the bot connected to the Discord API double, for the bot's end-to-end tests:
``ask(name, user, options, roles)`` sends a slash command through the gateway and returns the
bot's answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from listserv.config import load
from listserv.store import Store
from tests.discord_double import DiscordDouble, ThreadedDouble
from tests.harness import Running, running, write_config
from tests.smtpsink import SmtpSink
from tests.test_bot_links import answer_text, discord_cfg

Ask = Callable[..., str]


@contextmanager
def bot_server(tmp_path: Path, db_url: str, sink: SmtpSink, store: Store
               ) -> Iterator[tuple[Ask, Running, DiscordDouble, dict[str, Any]]]:
    """Yields ``ask``, the running server, the double, and each synced command's
    ``default_member_permissions`` (what Discord was told about who may see it)."""
    with threaded_bot_server(tmp_path, db_url, sink, store) as (ask, server, threaded, perms):
        yield ask, server, threaded.double, perms


@contextmanager
def threaded_bot_server(tmp_path: Path, db_url: str, sink: SmtpSink, store: Store, *,
                        digest_channel: str = ""
                        ) -> Iterator[tuple[Ask, Running, ThreadedDouble, dict[str, Any]]]:
    """As ``bot_server``, yielding the double's thread (``threaded.call(double.press(...))``);
    ``digest_channel``: the double's channel (by name) set as ``[discord] digest_channel_id``."""
    with ThreadedDouble() as threaded:
        double = threaded.double
        cfg = discord_cfg(load(write_config(tmp_path, db_url, f"127.0.0.1:{sink.port}"), env={}),
                          double)
        if digest_channel:
            cfg = replace(cfg, discord=replace(cfg.discord,
                                               digest_channel_id=double.channels[digest_channel]))

        def ask(name: str, user: str, options: dict[str, object] | None = None,
                roles: tuple[str, ...] = ()) -> str:
            iid = threaded.call(double.interaction(name, user, options, roles=roles))
            return answer_text(threaded.call(double.callback_for(iid)))

        with running(cfg, store) as server:
            [sync] = threaded.call(double.wait_for(
                "PUT", f"/applications/{double.app_id}/guilds/{double.guild_id}/"))
            perms = {c["name"]: c.get("default_member_permissions") for c in sync.body}
            yield ask, server, threaded, perms
