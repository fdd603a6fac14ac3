"""CPU per accepted post, without SMTP or other threads: what the writer thread spends.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/post_cpu.py --posts 1000

A fresh store with ingest's 10-member list; ``--posts`` posts like ``bench/ingest.py``'s (~3 KB,
every third a reply), each judged and stored by ``posting.post`` in its own transaction, one after
the other in this thread. CPU is this thread's (``time.thread_time``), so other processes on the
machine change the figure far less than they change ingest's rates. ``join_archive`` is the part
spent making the post part of the archive (thread, thread summary, search text): ``posting``'s
``join_archive``, ``place`` and ``archive_post`` (an accepted post is placed before it is stored).
Ends with ``post_cpu posts=P cpu_ms_per_post=C join_archive_ms_per_post=J``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import LIST, fresh_database, member_email, populate, post_bytes, quiet_logging


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL server URL")
    args = ap.parse_args()
    quiet_logging()
    from listserv import posting
    from listserv.config import Config
    from listserv.lists import find
    from listserv.message import parse
    from listserv.store import Store

    with fresh_database(args.db) as url:
        populate(url, 10)
        store, cfg = Store(url), Config()
        archive = [0.0]
        depth = [0]

        def timed(real: Any) -> Any:  # the real one, timed (not twice when nested)
            def run(*a: Any, **k: Any) -> Any:
                depth[0] += 1
                started = time.thread_time()
                try:
                    return real(*a, **k)
                finally:
                    depth[0] -= 1
                    if depth[0] == 0:
                        archive[0] += time.thread_time() - started
            return run

        # An accepted post is placed in its thread before it is stored (``place``), then
        # ``archive_post``; older code did both in ``join_archive``.
        parts = [n for n in ("join_archive", "place", "archive_post") if hasattr(posting, n)]
        reals = {n: getattr(posting, n) for n in parts}
        for n in parts:
            setattr(posting, n, timed(reals[n]))
        total = 0.0
        for i in range(1, args.posts + 1):
            sender, msgid = member_email(i % 10 + 1), f"cpu-{i}@council.example"
            raw = (post_bytes(sender, f"Re: Topic {i - 2}", msgid,
                              in_reply_to=f"cpu-{i - 2}@council.example")
                   if i % 3 == 0 else post_bytes(sender, f"Topic {i}", msgid))
            started = time.thread_time()
            with store.session() as s:
                ml = find(s, LIST)
                assert ml is not None
                result = posting.post(s, cfg, ml, raw, parse(raw, domain=cfg.server.domain),
                                      envelope_from=sender)
            total += time.thread_time() - started
            assert result.decision.action.value == "accept", result.decision
        for n in parts:
            setattr(posting, n, reals[n])
        store.dispose()
    n = args.posts
    print(f"post_cpu posts={n} cpu_ms_per_post={1000 * total / n:.2f} "
          f"join_archive_ms_per_post={1000 * archive[0] / n:.2f}")


if __name__ == "__main__":
    main()
