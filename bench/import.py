"""Member import benchmark: a generated Google Groups export, imported, then imported again.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/import.py --members 100000

A fresh SQLite store (or a throw-away database on the PostgreSQL server given by ``--db``) with
one empty list. The CSV is a Google Groups member export as Google writes it: a title line, then
"Email address", "Nickname", "Group status", "Email status", "Email preference", "Posting
permissions", "Join year" and "Join month"; one owner, a few managers, a mix of preferences, and
every fiftieth member without a nickname. It is imported as ``commonroom members import`` does
(``importer.read_google_groups_csv``, then ``importer.MemberImport`` one transaction per
``importer.CHUNK`` rows), timed from reading the file to the last commit; then the same file
again, which adds nothing.

Last line: ``import members=N seconds=S members_per_s=R reimport_rows_per_s=Q peak_rss_mb=M``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from bench.common import fresh_database, machine, member_email, peak_rss_mb, quiet_logging

PREFERENCES = ["Every email", "Every email", "Every email", "Digest", "Abridged", "No email"]


def write_export(path: Path, members: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("Members for group bench@googlegroups.com\n")
        out = csv.writer(f)
        out.writerow(["Email address", "Nickname", "Group status", "Email status",
                      "Email preference", "Posting permissions", "Join year", "Join month"])
        for i in range(1, members + 1):
            status = "owner" if i == 1 else "manager" if i % 1000 == 0 else "member"
            out.writerow([member_email(i), "" if i % 50 == 0 else f"Member {i}", status, "",
                          PREFERENCES[i % len(PREFERENCES)], "allowed", 2015 + i % 10, 1 + i % 12])


def import_file(store: object, path: Path) -> tuple[float, int, int]:
    """Import ``path`` as the CLI does; (seconds, added, skipped)."""
    from listserv import importer, lists
    from listserv.store import Store

    assert isinstance(store, Store)
    started = time.perf_counter()
    rows = importer.read_google_groups_csv(path)
    summary = importer.Summary()
    with store.session() as s:
        ml = lists.find(s, "bench")
        assert ml is not None
        run = importer.MemberImport(s, ml)
    for chunk in importer.chunks(rows, importer.CHUNK):
        with store.session() as s:
            run.add(s, chunk, summary)
    return time.perf_counter() - started, summary.added, summary.skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite",
                        help="sqlite (a temporary file) or a PostgreSQL URL: a throw-away "
                             "database is created on that server and dropped afterwards")
    args = parser.parse_args()
    quiet_logging()
    from listserv.models import MailingList
    from listserv.store import Store

    print(machine())
    with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "members.csv"
        write_export(path, args.members)
        print(f"  export: {args.members:,} members, {path.stat().st_size / 1e6:.1f} MB")
        store = Store(url)
        store.upgrade()
        with store.session() as s:
            s.add(MailingList(name="bench"))
        try:
            seconds, added, skipped = import_file(store, path)
            print(f"  import: {seconds:.2f} s, added {added:,}, skipped {skipped:,}")
            again, added2, skipped2 = import_file(store, path)
            print(f"  re-import: {again:.2f} s, added {added2:,}, skipped {skipped2:,}")
        finally:
            store.dispose()
    if added != args.members or added2 != 0:
        raise SystemExit(f"expected {args.members} added then none, got {added} and {added2}")
    print(f"import members={args.members} seconds={seconds:.2f} "
          f"members_per_s={args.members / seconds:.0f} "
          f"reimport_rows_per_s={args.members / again:.0f} peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
