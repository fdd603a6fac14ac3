"""``commonroom archive``: the list archive from the command line (importing past posts)."""

from __future__ import annotations

import logging
import sys
from itertools import islice
from pathlib import Path

import click

from listserv import archive_import, audit, search_behind
from listserv.cli_common import Ctx, list_or_fail, pass_ctx

CHUNK = 200  # posts per transaction: progress survives an interruption, locks stay short
SHOWN = 20  # unreadable messages listed one by one

log = logging.getLogger("commonroom.archive_import")


@click.group("archive")
def archive_group() -> None:
    """The list archive: importing past posts."""


@archive_group.command("import")
@click.argument("list_name", metavar="LIST")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@pass_ctx
def archive_import_command(obj: Ctx, list_name: str, file: Path) -> None:
    """Import past posts into LIST's archive from FILE: an mbox (a Google Groups or Mailman
    export, gzipped or not), an MMDF file or a Maildir directory.

    Posts keep their dates and join their threads; nothing is delivered to anyone. Posts the
    list already has (the same Message-ID) are skipped, so running it again adds nothing.
    """
    summary = archive_import.Summary()
    domain = obj.cfg.server.domain
    try:
        with obj.open_store() as store:
            with store.session() as s:
                list_or_fail(s, list_name)  # before reading what may be a large file
            with archive_import.open_mailbox(file) as (count, entries), click.progressbar(
                    length=count, label=f"importing into {list_name}", file=sys.stderr) as bar:
                    while chunk := list(islice(entries, CHUNK)):
                        with store.session() as s:
                            ml = list_or_fail(s, list_name)
                            for entry in chunk:
                                archive_import.import_entry(s, ml, entry, summary,
                                                            domain=domain, source=file.name)
                        bar.update(len(chunk))
            with store.session() as s:
                audit.record(s, list_id=list_or_fail(s, list_name).id, actor="cli",
                             action="archive-import", target=file.name,
                             detail=f"imported {summary.imported}, duplicates "
                                    f"{summary.duplicates}, unreadable {len(summary.unreadable)}")
            # PostgreSQL: the imported posts' tsvectors now, not one by one in every search
            # until a serve's indexer comes by (search_behind).
            search_behind.index_pending(store)
    except archive_import.ImportProblem as e:
        raise click.ClickException(str(e)) from None
    log.info("archive import into %s from %s: %d imported, %d duplicates, %d unreadable",
             list_name, file, summary.imported, summary.duplicates, len(summary.unreadable),
             extra={"list": list_name, "file": str(file)})
    click.echo(f"imported {summary.imported}, skipped {summary.duplicates} (already in the "
               f"archive), unreadable {len(summary.unreadable)}")
    for position, why in summary.unreadable[:SHOWN]:
        click.echo(f"  message {position}: {why}", err=True)
    if len(summary.unreadable) > SHOWN:
        click.echo(f"  … and {len(summary.unreadable) - SHOWN} more", err=True)
