"""Idle memory benchmark: what ``commonroom serve`` holds when nothing is happening.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/idle.py

A fresh store (SQLite in a temp dir, or a throw-away database on the PostgreSQL server given by
``--db``) migrated in a child process; then ``commonroom serve`` as a real child
process (SMTP, delivery to a Maildir, the scheduler, the web pages; no Discord token) on free
loopback ports. Once /healthz answers and the SMTP port greets, the benchmark waits
``--settle`` seconds and reads VmRSS from /proc/PID/status of the server and of any processes
it started.

Last line: ``idle rss_mb=M goal_mb=120``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import fresh_database, machine, start_serve

GOAL_MB = 120


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren and so on (from /proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", default="sqlite",
                        help="sqlite (a temporary file) or a PostgreSQL URL: a throw-away "
                             "database is created on that server and dropped afterwards")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait after the server answers before reading its RSS")
    args = parser.parse_args()
    print(f"{machine()}; load average {os.getloadavg()[0]:.1f}")
    with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _upgrade(url)
        started = time.perf_counter()
        server, _, _ = start_serve(url, folder)
        try:
            print(f"  serve answered in {time.perf_counter() - started:.1f} s (pid {server.pid})")
            time.sleep(args.settle)
            pids = [server.pid, *descendants(server.pid)]
            sizes = {pid: rss_mb(pid) for pid in pids}
            for pid, size in sizes.items():
                print(f"  pid {pid}: VmRSS {size:.1f} MB")
            total = sum(sizes.values())
        finally:
            server.terminate()
            server.wait(30)
    print(f"idle rss_mb={total:.0f} goal_mb={GOAL_MB}")


def _upgrade(url: str) -> None:
    """Migrate in a child process, so that nothing it loads is counted or shared."""
    code = "import sys; from listserv.store import Store; s = Store(sys.argv[1]); s.upgrade()"
    subprocess.run([sys.executable, "-c", code, url], check=True,
                   env={**os.environ, "PYTHONPATH": os.getcwd()})


if __name__ == "__main__":
    main()
