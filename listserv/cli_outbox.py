"""``commonroom outbox``: see what is queued for delivery and re-queue deliveries that failed.

The queries are ``listserv.outbox_admin``'s; this module only parses options and prints.
"""

from __future__ import annotations

from datetime import datetime

import click

from listserv import outbox_admin
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.models import OutboxState, utcnow

STATES = [s.value for s in OutboxState]


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail: list deliveries, re-queue the ones that failed."""


def _list_id(obj: Ctx, list_name: str | None) -> int | None:
    if list_name is None:
        return None
    with obj.session() as (_store, s):
        return list_or_fail(s, list_name).id


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


@outbox_group.command("list")
@click.option("--state", type=click.Choice(STATES), default=None,
              help="Only deliveries in this state (failed: gave up after [delivery] "
                   "give_up_after of temporary failures).")
@click.option("--list", "list_name", metavar="LIST", default=None, help="Only this list's mail.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many, newest first.")
@pass_ctx
def outbox_list(obj: Ctx, state: str | None, list_name: str | None, limit: int) -> None:
    """Show deliveries, newest first: id, state, list, recipient, attempts, queued at,
    next try, last error."""
    list_id = _list_id(obj, list_name)
    with obj.open_store() as store:
        rows = outbox_admin.entries(store, state=OutboxState(state) if state else None,
                                    list_id=list_id, limit=limit)
    if not rows:
        click.echo("no deliveries" + (f" in state {state}" if state else "")
                   + (f" for {list_name}" if list_name else ""))
    for r in rows:
        click.echo(f"{r.id}\t{r.state}\t{r.list_name or '-'}\t{r.recipient}\t{r.attempts}\t"
                   f"{_when(r.created_at)}\t{_when(r.next_attempt_at)}\t{r.last_error}")


@outbox_group.command("retry")
@click.option("--list", "list_name", metavar="LIST", default=None,
              help="Only this list's failed deliveries (default: every list's).")
@pass_ctx
def outbox_retry(obj: Ctx, list_name: str | None) -> None:
    """Re-queue failed deliveries: they are tried again now, for a new [delivery]
    give_up_after."""
    list_id = _list_id(obj, list_name)
    with obj.open_store() as store:
        count = outbox_admin.retry_failed(store, utcnow(), list_id=list_id)
    where = f" of {list_name}" if list_name else ""
    if not count:
        click.echo(f"no failed deliveries{where} to re-queue")
        return
    click.echo(f"re-queued {count} failed deliveries{where}; a running 'commonroom serve' "
               "sends them within its poll interval")
