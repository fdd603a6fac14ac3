"""``commonroom competitions``: start a prize draw, see its entrants, draw it (early) or call it
off, check it, and draw a reserve (``listserv.competitions``); this module parses options and prints."""

from __future__ import annotations

import click
from sqlmodel import Session

from listserv import competitions, when
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.models import Competition, CompetitionState, utcnow


def _competition(s: Session, competition_id: int) -> Competition:
    comp = s.get(Competition, competition_id)
    if comp is None:
        raise click.ClickException(f"there is no competition {competition_id}")
    return comp


@click.group("competitions")
def competitions_group() -> None:
    """Prize draws among the members who reply to an announcement."""


@competitions_group.command("start")
@click.argument("list_name", metavar="LIST")
@click.option("--prize", required=True, help="What the winner gets.")
@click.option("--closes", required=True, metavar="TIME",
              help="When entries close and the draw happens, in the list's time zone: "
                   "'next Friday 12:00', or an ISO time such as 2026-12-11T12:00.")
@click.option("--reserves", type=click.IntRange(min=0, max=20), default=0, show_default=True,
              help="Reserves drawn after the winner, in order.")
@click.option("--exclude-org", default="", metavar="ORG",
              help="Vendor staff of this organisation (the sponsor) cannot enter.")
@click.option("--how", "how_to_enter", default="", metavar="TEXT",
              help="How to enter, for the announcement (default: reply to the post).")
@pass_ctx
def competitions_start(obj: Ctx, list_name: str, prize: str, closes: str, reserves: int,
                       exclude_org: str, how_to_enter: str) -> None:
    """Start a competition: announce it to the list and print its id."""
    with obj.session() as (_store, s):
        ml = list_or_fail(s, list_name)
        now = utcnow()
        try:
            closes_at = when.parse(closes, ml.timezone, now)
            comp = competitions.start(s, obj.cfg, ml, prize=prize, closes_at=closes_at, now=now,
                                      how_to_enter=how_to_enter, reserves=reserves,
                                      exclude_org=exclude_org)
        except ValueError as e:  # WhenProblem too
            raise click.ClickException(str(e)) from None
        click.echo(comp.id)


@competitions_group.command("entrants")
@click.argument("competition_id", metavar="ID", type=int)
@pass_ctx
def competitions_entrants(obj: Ctx, competition_id: int) -> None:
    """The entrants in the order they entered: number, address, time."""
    with obj.session() as (_store, s):
        comp = _competition(s, competition_id)
        rows = competitions.entries(s, competition_id)
        click.echo(f"competition {comp.id} ({comp.prize}): {comp.state}, {len(rows)} entrants")
        for i, e in enumerate(rows, 1):
            click.echo(f"{i}\t{e.address}\t{e.entered_at:%Y-%m-%d %H:%M} UTC")


@competitions_group.command("draw")
@click.argument("competition_id", metavar="ID", type=int)
@click.option("--now", "early", is_flag=True, help="Draw now, before the closing time.")
@pass_ctx
def competitions_draw(obj: Ctx, competition_id: int, early: bool) -> None:
    """Draw a competition (the scheduler does it at the closing time by itself)."""
    with obj.session() as (_store, s):
        comp = _competition(s, competition_id)
        now = utcnow()
        if comp.closes_at > now and not early:
            raise click.ClickException(
                f"competition {competition_id} closes {comp.closes_at:%Y-%m-%d %H:%M} UTC and "
                "is drawn then; add --now to close it and draw now")
        drawn = competitions.draw(s, obj.cfg, competition_id, now=now, actor="cli")
        if drawn is None:
            raise click.ClickException(f"competition {competition_id} is {comp.state}: "
                                       "it cannot be drawn again")
    click.echo(f"drew competition {competition_id} among {drawn.entrants} entrants: "
               f"winner {drawn.winner or 'none'}"
               + (f"; reserves {', '.join(drawn.reserves)}" if drawn.reserves else ""))


@competitions_group.command("cancel")
@click.argument("competition_id", metavar="ID", type=int)
@pass_ctx
def competitions_cancel(obj: Ctx, competition_id: int) -> None:
    """Call off an open competition: no draw; the list is told in its thread (and Discord's
    card is closed)."""
    with obj.session() as (_store, s):
        comp = _competition(s, competition_id)
        state = comp.state
        if not competitions.cancel(s, obj.cfg, competition_id, actor="cli"):
            raise click.ClickException(f"competition {competition_id} is {state}: only an open "
                                       "competition can be called off")
    click.echo(f"cancelled competition {competition_id}; the list is told")


@competitions_group.command("verify")
@click.argument("competition_id", metavar="ID", type=int)
@pass_ctx
def competitions_verify(obj: Ctx, competition_id: int) -> None:
    """Recompute the draw from the published seed and entrant list; exit 1 if it fails."""
    with obj.session() as (_store, s):
        comp = _competition(s, competition_id)
        result = competitions.verify(s, comp)
    for ok, what in result.checks:
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {what}")
    if not result.ok:
        raise click.ClickException(f"competition {competition_id} does not verify")
    click.echo(f"competition {competition_id} verifies")


@competitions_group.command("reserve")
@click.argument("competition_id", metavar="ID", type=int)
@pass_ctx
def competitions_reserve(obj: Ctx, competition_id: int) -> None:
    """The winner did not answer: give the prize to the next reserve (tells them and the list)."""
    with obj.session() as (_store, s):
        comp = _competition(s, competition_id)
        if comp.state != CompetitionState.DRAWN.value:
            raise click.ClickException(f"competition {competition_id} is {comp.state}; "
                                       "draw it first")
        address = competitions.draw_reserve(s, obj.cfg, comp)
        if address is None:
            raise click.ClickException(f"competition {competition_id} has no reserve left")
        click.echo(f"reserve {comp.current} wins: {address}")
