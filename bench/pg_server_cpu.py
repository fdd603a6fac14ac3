"""PostgreSQL's own CPU per handled post, by phase, optionally with the schema changed first.

A fresh database (on the server --db names, dropped afterwards), the ingest bench's 10-member
list and N of its posts (every third a reply): queued (``inbound_queue.enqueue``, one
transaction), then handled by one session two posts a transaction (``inbound_queue.handle``,
as the group committer's groups at the bench's load), then the outbox worker's claim and
write-back of every copy, 50 copies a statement, then the search indexer's batches (what
the handling left to ``search_behind``; none where the post's INSERT computes tsv). The
figures are the utime+stime of the one server backend that ran each phase
(/proc/<pg_backend_pid>/stat: the server must be on this machine); no App, no SMTP, no sink,
so they move little with load.

``--variant "SQL; SQL"`` runs statements after the migrations (e.g. ``DROP INDEX …``), to
price an index, a column or a storage setting by difference. Run two variants alternately.

    PYTHONPATH=. python bench/pg_server_cpu.py --posts 2000 [--variant SQL] [--label NAME]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench.common import LIST, fresh_database, member_email, populate, post_bytes, quiet_logging, write_config
from listserv import accept, inbound_queue, search_behind
from listserv.addresses import Destination, Kind
from listserv.config import load
from listserv.store import Store

TICK = os.sysconf("SC_CLK_TCK")
CLAIM = text("UPDATE outbox SET state = 'sending', claimed_by = 1 WHERE id IN (SELECT id "
             "FROM outbox WHERE state = 'pending' AND next_attempt_at <= now() ORDER BY "
             "priority, next_attempt_at LIMIT 50 FOR UPDATE SKIP LOCKED) "
             "RETURNING id, message_pk, payload, recipient")
SENT = text("UPDATE outbox SET state = 'sent', sent_at = now(), attempts = attempts + 1 "
            "WHERE id = ANY(:ids) AND claimed_by = 1")


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def post(run: str, i: int) -> bytes:
    """The ingest bench's i-th post (bench/ingest.py ``Clients.message``)."""
    sender, msgid = member_email(i % 10 + 1), f"ingest-{run}-{i}@council.example"
    if i % 3 == 0:
        return post_bytes(sender, f"Re: Topic {i - 2}", msgid,
                          in_reply_to=f"ingest-{run}-{i - 2}@council.example")
    return post_bytes(sender, f"Topic {i}", msgid)


def measure(url: str, posts: int, variant: str) -> dict[str, float]:
    populate(url, 10)
    store = Store(url)
    try:
        with store.session() as s:
            for statement in filter(None, (x.strip() for x in variant.split(";"))):
                s.execute(text(statement))
        with tempfile.TemporaryDirectory() as folder:
            cfg = load(write_config(Path(folder), url, 9, 1))
        run, ids = str(time.time_ns()), []
        with store.session() as s:
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            c0 = backend_cpu(pid)
            for i in range(posts):
                d = accept.Delivery(member_email(i % 10 + 1), (Destination(LIST, Kind.POST),),
                                    post(run, i))
                ids.append(inbound_queue.enqueue(s, accept.prepare(cfg, d), False))
            s.commit()
            c1 = backend_cpu(pid)
            for k in range(0, posts, 2):
                for row_id in ids[k:k + 2]:
                    assert inbound_queue.handle(s, cfg, row_id)
                s.commit()
            c2 = backend_cpu(pid)
            while got := s.execute(CLAIM).all():
                s.commit()
                s.execute(SENT, {"ids": [r.id for r in got]})
                s.commit()
            c3 = backend_cpu(pid)
            # The search tsvectors the handling left to the indexer (migration 0024), if any.
            indexer = s.execute(text("SELECT to_regprocedure('search_tsv(text,text,text)') "
                                     "IS NOT NULL")).scalar_one()
            while indexer and search_behind.index_batch(s.connection()):
                s.commit()
            s.commit()
            c4 = backend_cpu(pid)
        return {"enqueue": c1 - c0, "handle": c2 - c1, "deliver": c3 - c2, "index": c4 - c3}
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--variant", default="", help="SQL run after the migrations")
    parser.add_argument("--label", default="")
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    quiet_logging()
    with fresh_database(args.db) as url:
        cpu = measure(url, args.posts, args.variant)
    per_post = " ".join(f"{k}_ms={v / args.posts * 1000:.3f}" for k, v in cpu.items())
    print(f"pg_server_cpu label={args.label or args.variant[:40] or 'as-migrated'} "
          f"posts={args.posts} {per_post} load={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
