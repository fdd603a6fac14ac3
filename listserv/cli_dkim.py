"""``commonroom dkim keygen`` and ``commonroom doctor``: the list domain's authentication.

The keys and records are ``listserv.dkim``'s, the checks ``listserv.doctor``'s; this module
parses options, writes the key file and prints.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from listserv import dkim, doctor
from listserv.cli_common import Ctx, list_or_fail, pass_ctx
from listserv.config import SELECTOR
from listserv.models import MailingList


@click.group("dkim")
def dkim_group() -> None:
    """DKIM keys for signing what the lists send."""


@dkim_group.command("keygen")
@click.option("--selector", required=True, help="The DKIM selector, e.g. cr2026 (a DNS label).")
@click.option("--key-file", metavar="PATH",
              help="Where to write the private key (default: var/dkim/SELECTOR.key).")
@click.option("--algorithm", type=click.Choice([a.value for a in dkim.Algorithm]), default="rsa",
              show_default=True, help="rsa (2048 bits, understood everywhere) or ed25519.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@pass_ctx
def keygen(obj: Ctx, selector: str, key_file: str | None, algorithm: str, force: bool) -> None:
    """Write a new private key (mode 0600) and print the DNS TXT record to publish."""
    cfg = obj.cfg
    if not SELECTOR.fullmatch(selector):
        raise click.ClickException(f"--selector must be a DNS label like cr2026, got {selector!r}")
    rel = key_file or dkim.default_key_file(selector)
    path = Path(rel) if key_file else cfg.base_dir / rel
    if path.exists() and not force:
        raise click.ClickException(f"{path} already exists; use --force to replace it (mail "
                                   "signed with the old key fails once its record is replaced)")
    pair = dkim.generate(dkim.Algorithm(algorithm))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pair.private_bytes())
        os.chmod(tmp, 0o600)  # whatever the umask
        tmp.replace(path)
    except OSError as e:
        raise click.ClickException(f"cannot write {path}: {e.strerror}") from None
    click.echo(f"; wrote the private key to {path}; publish this record in the zone of "
               f"{cfg.server.domain}:", err=True)
    click.echo(dkim.txt_record(selector, cfg.server.domain, pair.txt_value()))
    click.echo(f"; then set [delivery] dkim_selector = \"{selector}\" and dkim_key_file = "
               f"\"{path if key_file else rel}\" and restart 'commonroom serve'", err=True)


@click.command("doctor")
@click.option("--timeout", type=click.FloatRange(0.1, 30), default=3.0, show_default=True,
              help="Seconds each network check may take.")
@click.option("--list", "list_name", metavar="NAME",
              help="Whose envelope senders the smarthost must accept (default: the first list).")
@pass_ctx
def doctor_command(obj: Ctx, timeout: float, list_name: str | None) -> None:
    """Check MX, SPF, DKIM, DMARC, the smarthost and web_base_url as the mail world sees them.

    Exits 1 when any check FAILs."""
    findings = asyncio.run(doctor.run(obj.cfg, timeout=timeout,
                                      list_name=_sender_list(obj, list_name)))
    for f in findings:
        click.echo(f"{f.status.value:<4}  {f.check:<9}  {f.detail}")
        if f.fix and f.status is not doctor.Status.OK:
            click.echo(f"{'':<17}fix: {f.fix}")
    failed = [f.check for f in findings if f.status is doctor.Status.FAIL]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(failed)}")


def _sender_list(obj: Ctx, name: str | None) -> str | None:
    """The list whose senders the smarthost check uses: ``name`` (which must exist), else the
    first list created; None when there is none, or no usable database (doctor checks the
    outside world and must run before the first list, or the first migration)."""
    if name is not None:
        with obj.session() as (_store, s):
            return list_or_fail(s, name).name
    from listserv.serve import schema_problem

    store = obj.store()
    try:
        if schema_problem(store):
            return None
        with store.session() as s:
            return s.exec(select(MailingList.name).order_by(col(MailingList.id))).first()
    except SQLAlchemyError:
        return None
    finally:
        store.dispose()
