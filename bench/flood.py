"""Flood benchmark: a spam flood of non-member posts must not stall a member or a confirmation.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/flood.py --posts 5000

A fresh SQLite store (or a throw-away database on the PostgreSQL server given by ``--db``) with a
10-member list (member 1 is its moderator), ``App`` in this process, and a sink (``--sink``: the
lean one or aiosmtpd; its own process) that counts and notes when mail for two watched
addresses arrives. While ``--clients`` threads send ``--posts`` ~3 KB posts from non-members
(500 different senders, each post held for moderation: a notice to the moderator, and to the
sender once), one member posts every second on a new connection, and two seconds in one
address sends a subscribe request to ``bench-join``.

- member p50/p99 ms: from connecting to the 250 of each member post;
- member delivery p99 ms: from sending a member post until its copy reached a watched member;
- confirmation_seconds: from sending the subscribe request until the confirmation notice
  reached the sink.

A 250 means the message is queued (``listserv.inbound_queue``): the flood is accepted first and
held as the pipeline goes, member posts and requests ahead of it; both times are printed.

Last line: ``flood held=H member_p99_ms=L confirmation_seconds=C``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import multiprocessing as mp
import smtplib
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import (
    DOMAIN,
    LIST,
    POST_ADDRESS,
    AppRunner,
    Tickets,
    add_sink_option,
    fresh_database,
    machine,
    member_email,
    peak_rss_mb,
    populate,
    post_bytes,
    quiet_logging,
    serve_sink,
    write_config,
)
from listserv.addresses import Kind, list_address

MEMBERS = 10
MODERATOR, POSTER, WATCHER = member_email(1), member_email(2), member_email(3)
JOINER = "newcomer@council.example"
MAX_MEMBER_POSTS = 1000

_CTX = mp.get_context("spawn")


class WatchingSink:
    """A counting sink in a child process that also notes (wall clock) when mail arrives for
    the watcher (every arrival, in order) and for the joiner (the first). ``kind``: as
    ``CountingSink``'s (bench/common.py ``SINKS``)."""

    def __init__(self, kind: str = "lean") -> None:
        self.count = _CTX.RawValue(ctypes.c_longlong, 0)
        self.watched = _CTX.RawArray(ctypes.c_double, MAX_MEMBER_POSTS)
        self.watched_n = _CTX.RawValue(ctypes.c_longlong, 0)
        self.joined_at = _CTX.RawValue(ctypes.c_double, 0.0)
        parent, child = _CTX.Pipe()
        self._proc = _CTX.Process(target=_sink_main, name="flood-sink", daemon=True, args=(
            child, self.count, self.watched, self.watched_n, self.joined_at, kind))
        self._proc.start()
        if not parent.poll(30):
            raise RuntimeError("the sink did not start")
        self.port: int = parent.recv()

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(10)


def _sink_main(conn: Connection, count: Any, watched: Any, watched_n: Any, joined_at: Any,
               kind: str) -> None:
    quiet_logging()

    def arrived(rcpt_tos: list[str], content: bytes) -> None:
        count.value += 1
        now = time.time()
        for rcpt in rcpt_tos:
            if rcpt == WATCHER and watched_n.value < MAX_MEMBER_POSTS:
                watched[watched_n.value] = now
                watched_n.value += 1
            elif rcpt == JOINER and not joined_at.value:
                joined_at.value = now

    async def serve() -> None:
        server = await serve_sink(kind, arrived)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(serve())


@dataclass
class Flood(Tickets):
    run_id: str
    errors: list[str] = field(default_factory=list)

    def run(self, port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            while (i := self.take()) is not None:
                sender = f"offer{i % 500}@spam{i % 37}.example"
                raw = post_bytes(sender, f"Cheap offer {i}", f"flood-{self.run_id}-{i}@spam.example")
                try:
                    client.sendmail(sender, [POST_ADDRESS], raw)
                except smtplib.SMTPResponseException as e:
                    with self._lock:
                        self.errors.append(f"post {i}: {e}")


def member_posts(port: int, run_id: str, stop: threading.Event,
                 sent: list[float], latencies: list[float]) -> None:
    """One member post per second, each on a new connection, until ``stop``."""
    n = 0
    while not stop.is_set() and n < MAX_MEMBER_POSTS:
        n += 1
        raw = post_bytes(POSTER, f"Member post {n}", f"member-{run_id}-{n}@council.example")
        wall, started = time.time(), time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.sendmail(POSTER, [POST_ADDRESS], raw)
        latencies.append(time.perf_counter() - started)
        sent.append(wall)
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - started)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def make_moderator(url: str) -> None:
    from sqlalchemy import text

    from listserv.store import Store

    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE subscription SET role = 'moderator' WHERE address_id = "
                          "(SELECT id FROM address WHERE email = :e)"), {"e": MODERATOR})
    store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--smtp-process", action="store_true",
                        help="[server] smtp_process = true: SMTP in a child process of the App's")
    parser.add_argument("--delivery-process", action="store_true",
                        help="[server] delivery_process = true: delivery in a child process of "
                             "the App's")
    parser.add_argument("--db", default="sqlite",
                        help="'sqlite' (a temp file) or a postgresql:// URL of a server on "
                             "which a throw-away database is created")
    add_sink_option(parser)
    args = parser.parse_args()
    quiet_logging()
    print(f"flood: {args.posts:,} non-member posts from {args.clients} clients, one member "
          f"post a second, one subscribe request; "
          f"db={'sqlite' if args.db == 'sqlite' else 'postgresql'}; sink {args.sink}; {machine()}")
    sink = WatchingSink(args.sink)
    try:
        with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as folder:
            populate(url, MEMBERS)
            make_moderator(url)
            config = write_config(Path(folder), url, sink.port, args.connections,
                                  smtp_process=args.smtp_process,
                                  delivery_process=args.delivery_process)
            runner = AppRunner(config, url).start()
            try:
                result = run(runner, args)
                # A 250 means queued: wait until the pipeline has handled the whole flood.
                runner.call(runner.app.settle(1800), 1810)
                result.handled_seconds = time.perf_counter() - result.started
                held = count_held(runner)
            finally:
                runner.stop()
    finally:
        sink.stop()
    report(result, held, sink)


@dataclass
class Result:
    flood_seconds: float
    sent: list[float]
    latencies: list[float]
    join_sent: float
    errors: list[str]
    posts: int = 0
    started: float = 0.0
    handled_seconds: float = float("nan")  # until the pipeline had handled every post


def run(runner: AppRunner, args: argparse.Namespace) -> Result:
    flood = Flood(args.posts, str(time.time_ns()))
    stop = threading.Event()
    sent: list[float] = []
    latencies: list[float] = []
    member = threading.Thread(target=member_posts, args=(runner.port, flood.run_id, stop, sent,
                                                         latencies), name="member")
    threads = [threading.Thread(target=flood.run, args=(runner.port,), name=f"flood-{n}")
               for n in range(args.clients)]
    started = time.perf_counter()
    for t in [*threads, member]:
        t.start()
    time.sleep(2.0)  # the subscribe request arrives in the middle of the flood
    join_sent = time.time()
    with smtplib.SMTP("127.0.0.1", runner.port, timeout=120) as client:
        client.sendmail(JOINER, [list_address(LIST, DOMAIN, Kind.JOIN)],
                        b"From: " + JOINER.encode() + b"\r\nSubject: subscribe\r\n\r\n\r\n")
    for t in threads:
        t.join()
    flood_seconds = time.perf_counter() - started
    stop.set()
    member.join()
    return Result(flood_seconds, sent, latencies, join_sent, flood.errors, args.posts, started)


def count_held(runner: AppRunner) -> int:
    from sqlmodel import func, select

    from listserv.models import Held

    with runner.store.session() as s:
        return int(s.exec(select(func.count()).select_from(Held)).one())


def report(r: Result, held: int, sink: WatchingSink) -> None:
    deadline = time.monotonic() + 120
    while (sink.watched_n.value < len(r.sent) or not sink.joined_at.value) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    if r.errors:
        print(f"  {len(r.errors)} flood posts refused, e.g. {r.errors[0]}")
    arrived = list(sink.watched[:sink.watched_n.value])
    delivery = [a - s for s, a in zip(r.sent, arrived, strict=False)]
    confirmation = sink.joined_at.value - r.join_sent if sink.joined_at.value else float("nan")
    accepted = r.posts - len(r.errors)
    print(f"  flood: {accepted:,} posts accepted in {r.flood_seconds:.1f} s "
          f"({accepted / r.flood_seconds:,.0f} posts/s); {held:,} held after "
          f"{r.handled_seconds:.1f} s ({held / r.handled_seconds:,.0f} posts/s); sink got "
          f"{sink.count.value:,} messages")
    print(f"  member: {len(r.latencies)} posts, 250 p50 "
          f"{percentile(r.latencies, 0.5) * 1000:.0f} ms p99 {percentile(r.latencies, 0.99) * 1000:.0f} "
          f"ms; delivered {len(arrived)}, p50 {percentile(delivery, 0.5) * 1000:.0f} ms "
          f"p99 {percentile(delivery, 0.99) * 1000:.0f} ms")
    print(f"  confirmation notice at the sink {confirmation:.2f} s after the request; "
          f"peak RSS {peak_rss_mb():.0f} MB")
    print(f"flood held={held} member_p99_ms={percentile(r.latencies, 0.99) * 1000:.0f} "
          f"confirmation_seconds={confirmation:.2f}")


if __name__ == "__main__":
    main()
