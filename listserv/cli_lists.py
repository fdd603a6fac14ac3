"""``commonroom lists``: create, show and configure mailing lists.

The queries and changes are ``listserv.lists``' and ``listserv.list_admin``'s; this module only
checks what was typed and prints.
"""

from __future__ import annotations

import click

from listserv import list_admin, lists, subscriptions
from listserv.cli_common import Ctx, address_or_fail, list_or_fail, pass_ctx


@click.group("lists")
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
        list_admin.create(s, name, description=description, moderators=emails, actor="cli")
    click.echo(f"created {name}@{obj.cfg.server.domain}")


@lists_group.command("list")
@pass_ctx
def lists_list(obj: Ctx) -> None:
    """Show every list with its number of members."""
    with obj.session() as (_store, s):
        rows = list_admin.overview(s)
    if not rows:
        click.echo("no lists yet; create one with: commonroom lists create NAME")
    for row in rows:
        click.echo(f"{row.name}@{obj.cfg.server.domain}\t{row.members} members\t"
                   f"{row.description}")


@lists_group.command("show")
@click.argument("name")
@pass_ctx
def lists_show(obj: Ctx, name: str) -> None:
    """Show a list's settings and addresses."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, name)
        assert ml.id is not None
        count = list_admin.member_count(s, ml.id)
        mods = subscriptions.moderators(s, ml.id)
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
        problem = list_admin.change_setting(s, list_or_fail(s, name), key, value, actor="cli")
        if problem:
            raise click.ClickException(problem)
    click.echo(f"{name}: {key} = {value}")
