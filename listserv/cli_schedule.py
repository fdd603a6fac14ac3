"""``commonroom schedule``: posts sent to a list later, once or on a recurrence
(``listserv.scheduled_posts``); this module parses options and prints."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from listserv import recurrence, scheduled_posts, when
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.models import MailingList, ScheduledPost, ScheduledState, utcnow

AT_HELP = ("When (in the list's time zone): an ISO time such as 2026-12-09T09:00, or a phrase "
           "such as 'next Wednesday 09:00'. With --every: the rule's first occurrence from then.")
EVERY_HELP = f"Repeat: {recurrence.EXAMPLES}."


def _time(text: str, tz: str) -> datetime:
    try:
        return when.parse(text, tz, utcnow())
    except when.WhenProblem as e:
        raise click.ClickException(str(e)) from None


def _body(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.ClickException(f"cannot read the body from {path}: {e}") from None


def _local(at: datetime, tz: str) -> str:
    return f"{at.astimezone(ZoneInfo(tz)):%a %Y-%m-%d %H:%M %Z}"


def _line(row: ScheduledPost, ml: MailingList) -> str:
    return (f"{row.id}\t{_local(row.next_at, ml.timezone)}\t{row.rule or 'once'}\t"
            f"{row.from_address}\t{row.subject}")


@click.group("schedule")
def schedule_group() -> None:
    """Posts sent to a list later (guest posts, announcements), once or on a recurrence."""


@schedule_group.command("add")
@click.argument("list_name", metavar="LIST")
@click.option("--at", "at_text", required=True, metavar="TIME", help=AT_HELP)
@click.option("--every", default="", metavar="RULE", help=EVERY_HELP)
@click.option("--from", "from_address", required=True, metavar="EMAIL",
              help="The member it is from (yourself, or the guest you post for).")
@click.option("--subject", required=True, help="The post's subject.")
@click.option("--body-file", required=True, metavar="FILE", help="A UTF-8 text file: the body.")
@pass_ctx
def schedule_add(obj: Ctx, list_name: str, at_text: str, every: str, from_address: str,
                 subject: str, body_file: str) -> None:
    """Schedule a post; prints its id and first time. It goes through the posting rules when it
    is sent, so it may be held like any post from that member."""
    body = _body(body_file)
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        at = _time(at_text, ml.timezone)
        try:
            row = scheduled_posts.schedule(s, ml, from_address=from_address, subject=subject,
                                           body=body, at=at, every=every, now=utcnow())
        except ValueError as e:  # WhenProblem too
            raise click.ClickException(str(e)) from None
        click.echo(f"{row.id}\t{_local(row.next_at, ml.timezone)}\t{row.rule or 'once'}")


@schedule_group.command("list")
@click.argument("list_name", metavar="LIST")
@pass_ctx
def schedule_list(obj: Ctx, list_name: str) -> None:
    """The list's scheduled posts, soonest first: id, next time, rule, from, subject."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        assert ml.id is not None
        rows = scheduled_posts.upcoming(s, ml.id)
        if not rows:
            click.echo(f"no scheduled posts on {list_name}")
        for row in rows:
            click.echo(_line(row, ml))


def _active(s: Session, scheduled_id: int) -> tuple[ScheduledPost, MailingList]:
    row = s.get(ScheduledPost, scheduled_id)
    if row is None or row.state != ScheduledState.ACTIVE.value:
        state = "no such scheduled post" if row is None else f"it is {row.state}"
        raise click.ClickException(f"cannot change scheduled post {scheduled_id}: {state} "
                                   "(see 'commonroom schedule list LIST')")
    ml = s.get(MailingList, row.list_id)
    assert ml is not None
    return row, ml


@schedule_group.command("cancel")
@click.argument("scheduled_id", metavar="ID", type=int)
@pass_ctx
def schedule_cancel(obj: Ctx, scheduled_id: int) -> None:
    """Cancel a scheduled post (every later occurrence of a recurring one)."""
    with obj.session() as (_store, s):
        _active(s, scheduled_id)
        scheduled_posts.cancel(s, scheduled_id)
    click.echo(f"cancelled scheduled post {scheduled_id}")


@schedule_group.command("change")
@click.argument("scheduled_id", metavar="ID", type=int)
@click.option("--at", "at_text", default=None, metavar="TIME", help=AT_HELP)
@click.option("--every", default=None, metavar="RULE",
              help=EVERY_HELP + " An empty RULE makes it a one-off post.")
@click.option("--from", "from_address", default=None, metavar="EMAIL",
              help="A new sender: a member of the list.")
@click.option("--subject", default=None, help="A new subject.")
@click.option("--body-file", default=None, metavar="FILE", help="A new body.")
@pass_ctx
def schedule_change(obj: Ctx, scheduled_id: int, at_text: str | None, every: str | None,
                    from_address: str | None, subject: str | None,
                    body_file: str | None) -> None:
    """Change a scheduled post's time, recurrence, sender, subject or body."""
    body = _body(body_file) if body_file else None
    with obj.session() as (_store, s):
        row, ml = _active(s, scheduled_id)
        at = _time(at_text, ml.timezone) if at_text else None
        try:
            scheduled_posts.change(s, ml, row, now=utcnow(), at=at, every=every,
                                   subject=subject, body=body, from_address=from_address)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        click.echo(_line(row, ml))
