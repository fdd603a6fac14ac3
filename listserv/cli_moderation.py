"""``commonroom bans``, ``commonroom audit`` and ``commonroom policy``: the moderators' tools
that are not the queue (which is ``listserv.cli_queue``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from listserv import audit, bans, participation, policy, subscriptions
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.message import parse
from listserv.models import MailingList, utcnow


@click.group("bans")
def bans_group() -> None:
    """Ban addresses or patterns from a list or the whole site, optionally until a date."""


@bans_group.command("add")
@click.argument("pattern")
@click.option("--list", "list_name", metavar="LIST", default=None,
              help="Only this list (default: every list on the site).")
@click.option("--expires", default="", metavar="WHEN",
              help="12h, 30d, 2w or a date (YYYY-MM-DD); default: never.")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@pass_ctx
def bans_add(obj: Ctx, pattern: str, list_name: str | None, expires: str, reason: str) -> None:
    """Ban PATTERN: an address, a glob like '*@spam.example', or a regex starting with ^."""
    try:
        expires_at = bans.parse_expiry(expires, utcnow())
        with obj.session() as (_store, s):
            ml = list_or_fail(s, list_name) if list_name else None
            ban = bans.add(s, ml, pattern, reason=reason, expires_at=expires_at, actor="cli")
            ban_id, stored = ban.id, ban.pattern
    except bans.BanProblem as e:
        raise click.ClickException(str(e)) from None
    where = f"from {list_name}" if list_name else "from every list"
    until = f" until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    click.echo(f"ban {ban_id}: {stored} is banned {where}{until}")


@bans_group.command("list")
@click.option("--list", "list_name", metavar="LIST", default=None,
              help="This list's bans and the site-wide ones (default: all bans).")
@click.option("--all", "include_expired", is_flag=True, help="Include expired bans.")
@pass_ctx
def bans_list(obj: Ctx, list_name: str | None, include_expired: bool) -> None:
    """Show bans: id, where, pattern, expiry, reason."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name) if list_name else None
        rows = bans.listing(s, ml, utcnow(), include_expired=include_expired)
    if not rows:
        click.echo("no bans")
    for row in rows:
        until = f"until {row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "no expiry"
        click.echo(f"{row.id}\t{row.list_name or '(site-wide)'}\t{row.pattern}\t{until}\t"
                   f"{row.reason}")


@bans_group.command("remove")
@click.argument("ban_id", metavar="ID", type=int)
@pass_ctx
def bans_remove(obj: Ctx, ban_id: int) -> None:
    """Lift ban ID ('commonroom bans list' shows the ids)."""
    with obj.session() as (_store, s):
        ban = bans.remove(s, ban_id, actor="cli")
        if ban is None:
            raise click.ClickException(f"there is no ban number {ban_id}; "
                                       "'commonroom bans list' shows them")
        pattern = ban.pattern
    click.echo(f"lifted ban {ban_id} ({pattern})")


@click.command("audit")
@click.argument("list_name", metavar="LIST", required=False)
@click.option("--limit", default=50, show_default=True, help="How many of the newest entries.")
@click.option("--action", "action_prefix", default="", metavar="PREFIX",
              help="Only actions starting with PREFIX, e.g. held- or ban-.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
def audit_command(obj: Ctx, list_name: str | None, limit: int, action_prefix: str,
                  as_json: bool) -> None:
    """Who did what, when and why on LIST (site-wide entries without LIST)."""
    with obj.session() as (_store, s):
        ml: MailingList | None = list_or_fail(s, list_name) if list_name else None
        rows = audit.entries(s, ml.id if ml else None, limit=limit, action_prefix=action_prefix)
    if not rows and not as_json:
        click.echo(f"no audit entries for {list_name or 'the site'}")
    for e in rows:
        if as_json:
            click.echo(json.dumps({"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                   "target": e.target, "detail": e.detail}))
        else:
            click.echo(f"{e.at:%Y-%m-%d %H:%M:%S}\t{e.actor}\t{e.action}\t{e.target}\t{e.detail}")


@click.group("policy")
def policy_group() -> None:
    """The participation policy for vendor staff and official posters."""


@policy_group.command("explain")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", metavar="LIST", required=True,
              help="Judge the message with this list's public sources and word limit.")
@pass_ctx
def policy_explain(obj: Ctx, file: Path, list_name: str) -> None:
    """Show what the participation policy decides for FILE (an .eml), without posting it."""
    raw = file.read_bytes()
    parsed = parse(raw, domain=obj.cfg.server.domain)
    sender = subscriptions.canonical(parsed.from_address or "") or ""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        assert ml.id is not None
        sub = subscriptions.find_subscription(s, ml.id, sender) if sender else None
        applies = participation.applies_to(s, ml, sender, sub)
        decision = participation.decide(s, ml, raw)
    click.echo(participation.describe(participation.evidence_json(decision)))
    if not applies:
        click.echo(f"The policy does not apply to {sender or 'this sender'} on {list_name} "
                   f"(policy_scope = {ml.policy_scope}): the post would not be held for it.")
    elif decision.accepted:
        click.echo("Outcome: accepted by the policy (the other rules still apply).")
    else:
        click.echo(f"Outcome: held, because {policy.HOLD_REASON}.")
