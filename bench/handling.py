"""Handling throughput alone on PostgreSQL: N queued posts, handled by W writer threads.

A fresh database, the ingest bench's 10-member list and N of its posts (every third a reply),
queued in one transaction; then ``serve``'s own pipeline (``inbound_queue.Pipeline`` feeding a
``GroupCommitter`` with ``writers`` threads) handles them all, and the time it took is the
figure. No SMTP, no delivery, no sink: what ``[server] handling_writers`` changes, alone.

    PYTHONPATH=. python bench/handling.py --posts 2000 --writers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench.common import LIST, fresh_database, member_email, populate, quiet_logging, write_config
from bench.pg_server_cpu import post
from listserv import accept, inbound_queue
from listserv.addresses import Destination, Kind
from listserv.config import load
from listserv.group_commit import GroupCommitter
from listserv.store import Store


def measure(url: str, posts: int, writers: int) -> str:
    populate(url, 10)
    store = Store(url)
    try:
        with tempfile.TemporaryDirectory() as folder:
            cfg = load(write_config(Path(folder), url, 9, 1))
        run = str(time.time_ns())
        with store.session() as s:
            for i in range(posts):
                d = accept.Delivery(member_email(i % 10 + 1), (Destination(LIST, Kind.POST),),
                                    post(run, i))
                inbound_queue.enqueue(s, accept.prepare(cfg, d), False)
        committer = GroupCommitter(store, writers=writers, urgent_writer=True)
        committer.start()
        pipeline = inbound_queue.Pipeline(store, cfg, committer, lambda: None)

        async def handle_all() -> tuple[float, float]:
            started, cpu = time.perf_counter(), time.process_time()
            await pipeline.start()
            await pipeline.settle(600)
            took = time.perf_counter() - started, time.process_time() - cpu
            await pipeline.stop()
            return took

        try:
            took, cpu = asyncio.run(handle_all())
        finally:
            committer.stop()
        with store.session() as s:
            left = s.execute(text("SELECT count(*) FROM inbound")).scalar_one()
            threads = s.execute(text("SELECT count(*), sum(post_count) FROM thread")).one()
        assert pipeline.handled == posts and left == 0, (pipeline.handled, left)
        assert threads[1] == posts, threads
        return (f"seconds={took:.2f} posts_per_s={posts / took:.1f} app_cpu_s={cpu:.2f} "
                f"groups={committer.groups} "
                f"stepped_aside={committer.stepped_aside} threads={threads[0]}")
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=1)
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    quiet_logging()
    with fresh_database(args.db) as url:
        figures = measure(url, args.posts, args.writers)
    print(f"handling writers={args.writers} posts={args.posts} {figures} "
          f"load={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
