"""The ``commonroom`` command line: a thin door over the list server's functions.

Every command has ``--help``; a failure prints what went wrong and what to do, and exits
non-zero (click's ``ClickException``: exit 1; usage errors: exit 2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import select as sa_select
from sqlmodel import col, func, select

from digests import cli as digest_cli
from listserv import (
    cli_moderation,
    importer,
    lists,
    logsetup,
    members,
    moderation,
    names,
    shunt,
    subscriptions,
)
from listserv import config as config_mod
from listserv.cli_common import Ctx, address_or_fail, list_or_fail, pass_ctx
from listserv.cli_outbox import outbox_group
from listserv.models import (
    Action,
    Address,
    DeliveryMode,
    MailingList,
    Person,
    PersonKind,
    Role,
    Subscription,
    utcnow,
)

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
    """Serve SMTP, deliver mail and run the scheduler (digests, held-post reminders)."""
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


# --- lists -------------------------------------------------------------------------------

@main.group("lists")
def lists_group() -> None:
    """Create, show and configure mailing lists."""


@lists_group.command("create")
@click.argument("name")
@click.option("--description", default="", help="One line saying what the list is for.")
@click.option("--moderator", "moderators", multiple=True, metavar="EMAIL",
              help="A moderator's address (repeatable); subscribed with the moderator role.")
@pass_ctx
def lists_create(obj: Ctx, name: str, description: str, moderators: tuple[str, ...]) -> None:
    """Create the list NAME (its address is NAME@DOMAIN)."""
    name = name.lower()
    problem = lists.name_problem(name)
    if problem:
        raise click.ClickException(problem)
    emails = [address_or_fail(m) for m in moderators]
    with obj.session() as (_store, s):
        if lists.find(s, name):
            raise click.ClickException(f"the list '{name}' already exists")
        ml = MailingList(name=name, description=names.clean(description))
        s.add(ml)
        s.flush()
        for email in emails:
            subscriptions.add_member(s, ml, email, role=Role.MODERATOR, actor="cli",
                                     verified=True)
        from listserv import audit

        audit.record(s, list_id=ml.id, actor="cli", action="list-created", target=name)
    click.echo(f"created {name}@{obj.cfg.server.domain}")


@lists_group.command("list")
@pass_ctx
def lists_list(obj: Ctx) -> None:
    """Show every list with its number of members."""
    with obj.session() as (_store, s):
        rows = s.exec(select(MailingList.name, MailingList.description,
                             func.count(col(Subscription.id)))
                      .join(Subscription, isouter=True).group_by(
                          col(MailingList.id)).order_by(MailingList.name)).all()
        if not rows:
            click.echo("no lists yet; create one with: commonroom lists create NAME")
        for name, description, count in rows:
            click.echo(f"{name}@{obj.cfg.server.domain}\t{count} members\t{description}")


@lists_group.command("show")
@click.argument("name")
@pass_ctx
def lists_show(obj: Ctx, name: str) -> None:
    """Show a list's settings and addresses."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, name)
        count = s.exec(select(func.count()).select_from(Subscription).where(
            Subscription.list_id == ml.id)).one()
        mods = subscriptions.moderators(s, ml.id or 0)
        click.echo(f"{ml.name}@{obj.cfg.server.domain}: {ml.description}")
        click.echo(f"  members: {count}; moderators: {', '.join(mods) or 'none'}")
        for key in lists.SETTINGS:
            value = getattr(ml, key)
            click.echo(f"  {key} = {'' if value is None else value}")


@lists_group.command("set")
@click.argument("name")
@click.argument("key")
@click.argument("value")
@pass_ctx
def lists_set(obj: Ctx, name: str, key: str, value: str) -> None:
    """Change one setting: commonroom lists set NAME KEY VALUE."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, name)
        problem = lists.apply_setting(ml, key, value)
        if problem:
            raise click.ClickException(problem)
        s.add(ml)
        from listserv import audit

        audit.record(s, list_id=ml.id, actor="cli", action="list-setting", target=key,
                     detail=value)
    click.echo(f"{name}: {key} = {value}")


# --- members -----------------------------------------------------------------------------

@main.group("members")
def members_group() -> None:
    """Add, remove, list and import a list's members."""


@members_group.command("add")
@click.argument("list_name", metavar="LIST")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--org", default="", help="Organisation.")
@click.option("--vendor", is_flag=True, help="The person is vendor staff.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.MEMBER.value,
              show_default=True)
@click.option("--delivery", type=click.Choice([m.value for m in DeliveryMode]),
              default=DeliveryMode.EACH.value, show_default=True)
@pass_ctx
def members_add(obj: Ctx, list_name: str, email: str, name: str, org: str, vendor: bool,
                role: str, delivery: str) -> None:
    """Subscribe EMAIL to LIST directly (no confirmation mail)."""
    address = address_or_fail(email)
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        added = subscriptions.add_member(s, ml, address, name=name, organisation=org,
                                         vendor=vendor or None, role=Role(role),
                                         mode=DeliveryMode(delivery), actor="cli",
                                         verified=True)
    click.echo(f"{'added' if added else 'already a member:'} {address} to {list_name}")


@members_group.command("set")
@click.argument("list_name", metavar="LIST")
@click.argument("email")
@click.option("--vendor", "vendor_org", metavar="ORG", default=None,
              help="The person is vendor staff of ORG.")
@click.option("--member", "plain_member", is_flag=True,
              help="The person is a community member (not vendor staff).")
@click.option("--official", type=click.Choice(["on", "off"]), default=None,
              help="Posts on this list in an official capacity (the participation policy applies).")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None)
@click.option("--delivery", type=click.Choice([m.value for m in DeliveryMode]), default=None,
              help="Each post, a digest (plain, mime, html) or no mail.")
@click.option("--moderation", type=click.Choice(["default", *[a.value for a in Action]]),
              default=None, help="This person's posts: always accept, hold, reject or discard; "
                                 "default = the list's rules.")
@click.option("--name", default=None, help="Display name.")
@pass_ctx
def members_set(obj: Ctx, list_name: str, email: str, vendor_org: str | None,
                plain_member: bool, official: str | None, role: str | None,
                delivery: str | None, moderation: str | None, name: str | None) -> None:
    """Change how EMAIL takes part in LIST: vendor or member, official, role, delivery."""
    if vendor_org is not None and plain_member:
        raise click.UsageError("--vendor and --member contradict each other; give one")
    if vendor_org is not None and not names.clean(vendor_org):
        raise click.UsageError("--vendor needs the organisation, e.g. --vendor 'Acme Ltd'")
    address = address_or_fail(email)
    changes = members.Changes(
        kind=PersonKind.VENDOR if vendor_org is not None else
        PersonKind.MEMBER if plain_member else None,
        organisation=vendor_org,
        official=None if official is None else official == "on",
        role=Role(role) if role else None,
        delivery=DeliveryMode(delivery) if delivery else None,
        moderation=None if moderation is None else "" if moderation == "default" else moderation,
        name=name)
    if changes.empty:
        raise click.UsageError("nothing to change: give --vendor ORG, --member, --official, "
                               "--role, --delivery, --moderation or --name")
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        try:
            done = members.apply(s, ml, address, changes, actor="cli")
        except members.NotSubscribed as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"{address} on {list_name}: {done}")


@members_group.command("remove")
@click.argument("list_name", metavar="LIST")
@click.argument("email")
@pass_ctx
def members_remove(obj: Ctx, list_name: str, email: str) -> None:
    """Unsubscribe EMAIL from LIST (no confirmation mail)."""
    address = address_or_fail(email)
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        if not subscriptions.remove_member(s, ml, address, actor="cli"):
            raise click.ClickException(f"{address} is not a member of {list_name}")
    click.echo(f"removed {address} from {list_name}")


@members_group.command("list")
@click.argument("list_name", metavar="LIST")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
def members_list(obj: Ctx, list_name: str, as_json: bool) -> None:
    """Show LIST's members (streamed: fine for very large lists)."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        query = (sa_select(col(Address.email), col(Person.display_name),
                           col(Person.organisation), col(Person.kind), col(Subscription.role),
                           col(Subscription.delivery_mode))
                 .join(Address, col(Address.id) == col(Subscription.address_id))
                 .join(Person, col(Person.id) == col(Address.person_id))
                 .where(col(Subscription.list_id) == ml.id)
                 .order_by(col(Address.email)).execution_options(yield_per=1000))
        rows = s.execute(query)
        for email, name, org, kind, role, mode in rows:
            if as_json:
                click.echo(json.dumps({"email": email, "name": name, "organisation": org,
                                       "vendor": kind == PersonKind.VENDOR.value,
                                       "role": role, "delivery": mode}))
            else:
                vendor = f" ({org}, vendor)" if kind == PersonKind.VENDOR.value else ""
                click.echo(f"{email}\t{name}{vendor}\t{role}\t{mode}")


@members_group.command("import")
@click.argument("list_name", metavar="LIST")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def members_import(obj: Ctx, list_name: str, file: Path) -> None:
    """Import members from a Google Groups member export (CSV)."""
    try:
        rows = importer.read_google_groups_csv(file)
    except importer.ImportProblem as e:
        raise click.ClickException(str(e)) from None
    summary = importer.Summary()
    with obj.open_store() as store:
        with store.session() as s:
            list_or_fail(s, list_name)
        with click.progressbar(length=len(rows), label=f"importing into {list_name}",
                               file=sys.stderr) as bar:
            # One transaction per chunk: progress is kept if the import is interrupted.
            for chunk in importer.chunks(rows, 500):
                with store.session() as s:
                    importer.import_rows(s, list_or_fail(s, list_name), chunk, summary)
                bar.update(len(chunk))
    click.echo(f"added {summary.added}, skipped {summary.skipped} (already members), "
               f"invalid {len(summary.invalid)}")
    for line, why in summary.invalid[:20]:
        click.echo(f"  line {line}: {why}", err=True)
    if len(summary.invalid) > 20:
        click.echo(f"  … and {len(summary.invalid) - 20} more", err=True)


# --- queue -------------------------------------------------------------------------------

@main.group("queue")
def queue_group() -> None:
    """The moderation queue: held posts (and shunted messages, whose handling failed)."""


def _age(then: datetime) -> str:
    seconds = int((utcnow() - then.replace(tzinfo=then.tzinfo or UTC)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@queue_group.command("list")
@click.argument("list_name", metavar="LIST", required=False)
@click.option("--shunted", is_flag=True,
              help="Show messages whose handling failed instead (of every list without LIST).")
@pass_ctx
def queue_list(obj: Ctx, list_name: str | None, shunted: bool) -> None:
    """Show the held posts of LIST: id, sender, subject, reason, age.

    With --shunted: messages kept because handling them failed (id, lists, sender, subject,
    error, age); 'commonroom queue retry ID' handles one again.
    """
    if shunted:
        _list_shunted(obj, list_name)
        return
    if list_name is None:
        raise click.UsageError("say which list: commonroom queue list LIST "
                               "(or --shunted for the shunted messages of every list)")
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        items = moderation.pending(s, ml)
    if not items:
        click.echo(f"nothing is held on {list_name}")
    for item in items:
        click.echo(f"{item.id}\t{item.sender}\t{item.subject}\t{item.reason}\t"
                   f"{_age(item.held_at)}")


def _list_shunted(obj: Ctx, list_name: str | None) -> None:
    with obj.session() as (_store, s):
        if list_name is not None:
            list_or_fail(s, list_name)
        items = shunt.listing(s, list_name)
    if not items:
        click.echo(f"nothing is shunted{f' on {list_name}' if list_name else ''}")
    for item in items:
        click.echo(f"{item.id}\t{','.join(item.lists)}\t{item.sender}\t{item.subject}\t"
                   f"{item.reason}\t{_age(item.received_at)}")


@queue_group.command("retry")
@click.argument("message_id", metavar="ID", type=int)
@pass_ctx
def queue_retry(obj: Ctx, message_id: int) -> None:
    """Handle shunted message ID again ('commonroom queue list --shunted' shows the ids)."""
    with obj.open_store() as store:
        result = shunt.retry(store, obj.cfg, message_id, actor="cli")
    if not result.ok:
        raise click.ClickException(result.message)
    click.echo(result.message)


def _act(obj: Ctx, held_id: int, action: Action, reason: str, future: str = "") -> None:
    with obj.session() as (_store, s):
        result = moderation.act(s, obj.cfg, held_id, action, actor="cli", reason=reason,
                                future=future)
    if not result.ok:
        raise click.ClickException(result.message)
    click.echo(result.message)


@queue_group.command("approve")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--reason", default="", help="A note for the audit log.")
@click.option("--future", type=click.Choice(["accept", "hold"]), default=None,
              help="Also set the sender's future posts: always accept, or always hold.")
@pass_ctx
def queue_approve(obj: Ctx, held_id: int, reason: str, future: str | None) -> None:
    """Approve held post ID: it goes to the list (once, however often you approve it)."""
    _act(obj, held_id, Action.ACCEPT, reason, future or "")


@queue_group.command("reject")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--reason", default="", help="Why: the sender is told.")
@pass_ctx
def queue_reject(obj: Ctx, held_id: int, reason: str) -> None:
    """Reject held post ID: the sender is told why."""
    _act(obj, held_id, Action.REJECT, reason)


@queue_group.command("discard")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--reason", default="", help="A note for the audit log.")
@pass_ctx
def queue_discard(obj: Ctx, held_id: int, reason: str) -> None:
    """Discard held post ID silently."""
    _act(obj, held_id, Action.DISCARD, reason)


@queue_group.command("sweep")
@pass_ctx
def queue_sweep(obj: Ctx) -> None:
    """Remind moderators of old held posts and expire overdue ones now (serve does this too)."""
    with obj.session() as (_store, s):
        reminded, expired = moderation.sweep(s, obj.cfg)
    click.echo(f"reminded {reminded}, expired {expired}")


main.add_command(cli_moderation.bans_group)
main.add_command(cli_moderation.audit_command)
main.add_command(cli_moderation.policy_group)
main.add_command(outbox_group)

# The digest commands live with the digests (the command line is a door onto every package).
main.add_command(digest_cli.digest_group)
main.add_command(digest_cli.jobs_group)
