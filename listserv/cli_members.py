"""``commonroom members``: add, change, remove, list and import a list's members.

The queries and changes are ``listserv.subscriptions``', ``listserv.members``' and
``listserv.importer``'s; this module only checks what was typed and prints.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from listserv import bounces, importer, members, names, subscriptions
from listserv.cli_common import Ctx, address_or_fail, list_or_fail, pass_ctx
from listserv.models import Action, DeliveryMode, PersonKind, Role


@click.group("members")
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
        assert ml.id is not None
        for m in members.roster(s, ml.id):
            if as_json:
                click.echo(json.dumps({"email": m.email, "name": m.name,
                                       "organisation": m.organisation, "vendor": m.vendor,
                                       "role": m.role, "delivery": m.delivery,
                                       "bounce_score": m.bounce_score,
                                       "last_bounce": _iso(m.last_bounce_at),
                                       "delivery_disabled": m.delivery_disabled_at is not None,
                                       "delivery_disabled_at": _iso(m.delivery_disabled_at)}))
            else:
                vendor = f" ({m.organisation}, vendor)" if m.vendor else ""
                off = "\tdisabled (bounces)" if m.delivery_disabled_at else ""
                click.echo(f"{m.email}\t{m.name}{vendor}\t{m.role}\t{m.delivery}{off}")


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


@members_group.command("enable")
@click.argument("list_name", metavar="LIST")
@click.argument("email")
@pass_ctx
def members_enable(obj: Ctx, list_name: str, email: str) -> None:
    """Deliver LIST's mail to EMAIL again after bounces disabled it (clears its score)."""
    address = address_or_fail(email)
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        outcome = bounces.enable(s, ml, address, actor="cli", via="cli")
        if not outcome.ok:
            raise click.ClickException(f"{outcome.message}; `commonroom members list "
                                       f"{list_name}` shows who is")
    click.echo(outcome.message)


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
            run = importer.MemberImport(s, list_or_fail(s, list_name))  # reads the members once
        with click.progressbar(length=len(rows), label=f"importing into {list_name}",
                               file=sys.stderr) as bar:
            # One transaction per chunk: progress is kept if the import is interrupted.
            for chunk in importer.chunks(rows, importer.CHUNK):
                with store.session() as s:
                    run.add(s, chunk, summary)
                bar.update(len(chunk))
    click.echo(f"added {summary.added}, skipped {summary.skipped} (already members), "
               f"invalid {len(summary.invalid)}")
    for line, why in summary.invalid[:20]:
        click.echo(f"  line {line}: {why}", err=True)
    if len(summary.invalid) > 20:
        click.echo(f"  … and {len(summary.invalid) - 20} more", err=True)
