"""``commonroom bounces LIST``: the list's recent bounces and complaints, with their cause.

The query is ``listserv.bounces.recent``; this module only prints.
"""

from __future__ import annotations

import json

import click

from listserv import bounces
from listserv.cli_common import Ctx, list_or_fail, pass_ctx


@click.command("bounces")
@click.argument("list_name", metavar="LIST")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
def bounces_command(obj: Ctx, list_name: str, limit: int, as_json: bool) -> None:
    """Show LIST's recent bounces: who, when, status code, what counted and why.

    5.7.x are refusals by the receiving side's policy (a deliverability problem, never counted
    against the member); "complaint" rows are spam reports (ARF) that unsubscribed the member.
    """
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        rows = bounces.recent(s, ml, limit)
        if not rows and not as_json:
            click.echo(f"no bounces recorded for {list_name}")
        for b in rows:
            if as_json:
                click.echo(json.dumps({"at": b.at.isoformat(), "address": b.address,
                                       "status": b.status, "counted": b.counted,
                                       "source": b.source, "diagnostic": b.diagnostic}))
            else:
                click.echo(f"{b.at:%Y-%m-%d %H:%M}\t{b.address}\t{b.status}\t"
                           f"counted {b.counted:g}\t{b.source}\t{b.diagnostic[:120]}")
