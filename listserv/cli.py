"""The ``commonroom`` command line: a thin door over the list server's functions.

Every command has ``--help``; a failure prints what went wrong and what to do, and exits
non-zero (click's ``ClickException``: exit 1; usage errors: exit 2).

This module holds the top-level group (which takes ``--config`` before or after any subcommand),
``init``, ``serve`` and ``db``; each other command group lives in its own ``cli_*`` module (the
digest ones with the digests) and is registered below. Commands query and change the store only
through the services; they parse options and print.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from bot import cli as bot_cli
from digests import cli as digest_cli
from listserv import (
    cli_archive,
    cli_dkim,
    cli_events,
    cli_lists,
    cli_members,
    cli_moderation,
    cli_queue,
    logsetup,
)
from listserv import config as config_mod
from listserv.cli_bounces import bounces_command
from listserv.cli_common import Ctx, pass_ctx
from listserv.cli_competitions import competitions_group
from listserv.cli_outbox import outbox_group
from listserv.cli_schedule import schedule_group

CONFIG_HELP = "Configuration file (default: commonroom.toml here, or $COMMONROOM_CONFIG)."


def _late_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # Runs while the subcommand's arguments are parsed, after main made the Ctx.
    obj = ctx.find_object(Ctx)
    if value is not None and obj is not None:
        obj.config_path = value


def _accept_config(command: click.Command) -> None:
    """Give ``command`` (and, for a group, everything under it) its own ``--config``."""
    if not any("--config" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(click.Option(["--config", "late_config"], metavar="PATH",
                                           expose_value=False, callback=_late_config,
                                           help=CONFIG_HELP))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_config(sub)


class MainGroup(click.Group):
    """``--config`` is accepted after any subcommand as well as before it (people type
    ``commonroom serve --config FILE``, and the systemd unit does); the last one wins.
    Added when a command is looked up, so commands other modules add later get it too."""

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _accept_config(command)
        return name, command, rest


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar="COMMONROOM_CONFIG",
              help=CONFIG_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Log more (debug level).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Commonroom: the community's mailing lists (and, later, its Discord bot)."""
    logsetup.configure(verbose, level=logging.WARNING)
    ctx.obj = Ctx(config_path)
    ctx.obj.verbose = verbose


@main.command()
@click.option("--domain", default="lists.example.org", show_default=True,
              help="The mail domain of the lists.")
@click.option("--force", is_flag=True, help="Overwrite an existing configuration file.")
@click.pass_context
def init(ctx: click.Context, domain: str, force: bool) -> None:
    """Write a commented configuration file and create the store."""
    path = Path(ctx.obj.config_path or config_mod.DEFAULT_FILE)
    if path.exists() and not force:
        raise click.ClickException(f"{path} already exists; use --force to overwrite it, or "
                                   "'commonroom db upgrade' to bring its store up to date")
    path.write_text(config_mod.EXAMPLE.format(domain=domain), encoding="utf-8")
    ctx.obj.config_path = str(path)
    store = ctx.obj.store()
    store.upgrade()
    store.dispose()
    click.echo(f"wrote {path} and created the store at {ctx.obj.cfg.database_url}")
    click.echo("next: commonroom lists create NAME --moderator YOU@EXAMPLE.ORG; commonroom serve")


@main.command()
@pass_ctx
def serve(obj: Ctx) -> None:
    """Serve SMTP, deliver mail, run the scheduler (digests, held-post reminders), serve the
    web pages ([server] web_host, web_port) and, when [discord] token is set, the Discord bot."""
    from listserv.serve import App, StartupError

    logsetup.configure(obj.verbose, level=logging.INFO)  # a server's log is its record
    try:
        asyncio.run(App(obj.cfg).run_forever())
    except StartupError as e:
        raise click.ClickException(str(e)) from None


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(obj: Ctx) -> None:
    """Create the schema or bring it up to date (safe to run again)."""
    store = obj.store()
    try:
        store.upgrade()
    except Exception as e:
        raise click.ClickException(f"could not upgrade {obj.cfg.database_url}: {e}") from None
    finally:
        store.dispose()
    click.echo("the database schema is up to date")


@db.command("reindex-search")
@pass_ctx
def db_reindex_search(obj: Ctx) -> None:
    """Rebuild the archive's search index from the posts' text (folded as new posts are:
    on SQLite not FTS5's own 'rebuild', which would not fold ø ł ß …)."""
    from listserv import search_index

    store = obj.store()
    try:
        count = search_index.rebuild(store)
    except Exception as e:
        raise click.ClickException(f"could not rebuild the search index: {e}") from None
    finally:
        store.dispose()
    click.echo(f"the search index is rebuilt: {count} posts")


main.add_command(cli_lists.lists_group)
main.add_command(cli_members.members_group)
main.add_command(bounces_command)
main.add_command(cli_queue.queue_group)
main.add_command(cli_moderation.bans_group)
main.add_command(cli_moderation.audit_command)
main.add_command(cli_moderation.policy_group)
main.add_command(outbox_group)
main.add_command(cli_archive.archive_group)
main.add_command(schedule_group)
main.add_command(competitions_group)
main.add_command(cli_events.events_group)
main.add_command(cli_dkim.dkim_group)
main.add_command(cli_dkim.doctor_command)

# The digest commands live with the digests (the command line is a door onto every package).
main.add_command(digest_cli.digest_group)
main.add_command(digest_cli.jobs_group)
main.add_command(bot_cli.bot_command)  # the Discord bot lives in bot/, as the digests do
