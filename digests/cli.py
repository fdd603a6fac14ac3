"""``commonroom digest …`` and ``commonroom jobs …``: look at and send digests, see the schedule."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from digests import periods, render, schedule, send
from listserv.addresses import Kind, list_address
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.lists import every as every_list
from listserv.models import MailingList, utcnow

FORMAT_CHOICE = click.Choice(["plain", "mime", "html"])


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a date; use YYYY-MM-DD or "
                                 "YYYY-MM-DDTHH:MM (UTC)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.group("digest")
def digest_group() -> None:
    """Weekly digests: preview one, or send it now."""


@digest_group.command("preview")
@click.argument("list_name", metavar="LIST")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="plain", show_default=True)
@click.option("--since", default=None, metavar="DATE",
              help="Start of the period (default: the end of the last digest, else a week ago).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the digest (an .eml) here instead of printing it.")
@pass_ctx
def digest_preview(obj: Ctx, list_name: str, fmt: str, since: str | None,
                   output: Path | None) -> None:
    """Build LIST's next digest as it stands now, without sending or recording anything."""
    now = utcnow()
    with obj.session() as (_store, s):
        ml: MailingList = list_or_fail(s, list_name)
        digest = send.next_digest(s, obj.cfg, ml, now, since=_when(since) if since else None)
    member = render.MemberLinks(email=f"preview@{obj.cfg.server.domain}",
                                unsubscribe_url="(your unsubscribe link)",
                                delivery_url="(your delivery settings link)")
    data = render.personalise(render.render(digest, fmt), member,
                              {"From": list_address(list_name, obj.cfg.server.domain, Kind.REQUEST)})
    click.echo(f"{len(digest.threads)} threads, {sum(t.new_posts for t in digest.threads)} posts "
               f"since {digest.period_start:%Y-%m-%d %H:%M} UTC", err=True)
    if output is not None:
        output.write_bytes(data)
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@digest_group.command("send")
@click.argument("list_name", metavar="LIST")
@click.option("--now", "now_flag", is_flag=True, required=True,
              help="Send the digest for the period up to now (required: says you mean it).")
@pass_ctx
def digest_send(obj: Ctx, list_name: str, now_flag: bool) -> None:
    """Send LIST's digest now; the next scheduled one starts from here.

    The copies are queued in the outbox; a running 'commonroom serve' delivers them.
    """
    with obj.open_store() as store:
        with store.session() as s:
            list_or_fail(s, list_name)
        outcome = send.send_period(store, obj.cfg, list_name, end=utcnow(), trigger="cli")
    click.echo(outcome.message)
    if not outcome.recorded:
        raise click.exceptions.Exit(1)


@click.group("jobs")
def jobs_group() -> None:
    """The scheduler's jobs (digests, held-post reminders)."""


@jobs_group.command("list")
@pass_ctx
def jobs_list(obj: Ctx) -> None:
    """Show each scheduled job and its next run."""
    with obj.open_store() as store:
        stored = {j.id: j for j in schedule.stored_jobs(store)}
        with store.session() as s:
            lists = [(ml.name, ml.digest_schedule, ml.timezone)
                     for ml in every_list(s)]
    now = utcnow()
    for name, cron, tz in lists:
        job_id = f"{schedule.DIGEST_PREFIX}{name}"
        if job_id not in stored:
            try:
                nxt = periods.next_fire(cron, tz, now)
            except periods.ScheduleProblem as e:
                click.echo(f"{job_id}\tunusable schedule: {e}")
                continue
            when = f"{nxt:%Y-%m-%d %H:%M %Z}" if nxt else "never"
            click.echo(f"{job_id}\t{when}\tweekly digest of {name} "
                       "(scheduled when 'commonroom serve' next starts)")
    for job in stored.values():
        click.echo(schedule.describe(job))
    if not lists and not stored:
        click.echo("no jobs: create a list, then run 'commonroom serve'")
