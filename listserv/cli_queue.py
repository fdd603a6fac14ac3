"""``commonroom queue``: the moderation queue (held posts) and the shunted messages, whose
handling failed.

The queries and actions are ``listserv.moderation``'s and ``listserv.shunt``'s; this module only
checks what was typed and prints.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from listserv import inbound_queue, moderation, shunt
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.models import Action, utcnow


@click.group("queue")
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
@click.option("--inbound", is_flag=True,
              help="Show accepted mail not handled yet (every list), e.g. after a crash.")
@pass_ctx
def queue_list(obj: Ctx, list_name: str | None, shunted: bool, inbound: bool) -> None:
    """Show the held posts of LIST: id, sender, subject, reason, age.

    With --shunted: messages kept because handling them failed (id, lists, sender, subject,
    error, age); 'commonroom queue retry ID' handles one again.

    With --inbound: mail accepted (answered 250) that 'commonroom serve' has not handled yet
    (id, envelope sender, addresses, failed attempts, last error, age). It is handled at the
    next start, or in seconds while serve runs; rows that failed 5 times wait for a fix.
    """
    if inbound:
        _list_inbound(obj)
        return
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


def _list_inbound(obj: Ctx) -> None:
    with obj.session() as (_store, s):
        items = inbound_queue.listing(s)
    if not items:
        click.echo("no accepted mail is waiting to be handled")
    for item in items:
        click.echo(f"{item.id}\t{item.envelope_from or '<>'}\t{item.destinations}\t"
                   f"{item.attempts}\t{item.last_error or '-'}\t{_age(item.received_at)}")


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
@click.option("--inbound", is_flag=True,
              help="ID is an accepted message waiting in the inbound queue "
                   "('queue list --inbound'): try it again from its first attempt.")
@pass_ctx
def queue_retry(obj: Ctx, message_id: int, inbound: bool) -> None:
    """Handle shunted message ID again ('commonroom queue list --shunted' shows the ids).

    With --inbound: give a queued message that failed five times its attempts back; a running
    'commonroom serve' takes it at its next sweep (seconds), or the next start.
    """
    if inbound:
        with obj.session() as (_store, s):
            found = inbound_queue.retry(s, message_id)
        if not found:
            raise click.ClickException(
                f"there is no queued message number {message_id}; "
                "'commonroom queue list --inbound' shows them")
        click.echo(f"queued message {message_id} will be tried again at the server's next sweep")
        return
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

