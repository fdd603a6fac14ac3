"""Ingest benchmark: many posts from concurrent SMTP clients to a small list.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/ingest.py --posts 2000 --clients 8

A fresh SQLite store (or a throw-away database on the PostgreSQL server given by ``--db``) with a
10-member list, the counting sink as smarthost, ``App`` in this process. ``--clients`` threads
each open one smtplib connection and reuse it, sending ~3 KB posts (a third of them replies, so
threading has work to do) until ``--posts`` have been answered 250. The first figure is the time
until every post is accepted (each 250 means stored, threaded and fanned out, committed); the
second is the time until every delivery (posts x members) has reached the sink.

With ``--policy`` the list puts every member under the participation policy (scope "everyone",
gov.uk news as its public source) and each post forwards a press release with a covering line and
a gov.uk link: every post is classified, compared with the earlier public texts (up to 50), and
accepted as public domain, so it becomes one of those texts for the posts after it.

The client threads share this process (and its GIL) with the App: the figures are for both.

``--synchronous FULL,NORMAL`` (SQLite) runs once per setting, each on a fresh store, to show what
durable commits (FULL, what the server uses: a power loss after the 250 loses nothing) cost
against NORMAL (a power loss may lose the last commits):

    .venv/bin/python -m bench.ingest --posts 2000 --clients 8 --synchronous FULL,NORMAL

``--processes 1,2,4`` (PostgreSQL only) runs the App in N child processes sharing the store, each
on its own SMTP port, the clients spread over them, every copy to the one sink; one run per N,
then a scaling table. The sink counts each (Message-ID, recipient) once, so a copy that two
processes both sent shows as a duplicate.

Each run prints its figures with its setting; the last line is the first run's (the server's
``synchronous=FULL``, or the first process count):
``ingest posts=P seconds=S posts_per_s=A delivered_posts_per_s=D p99_ms=L``. A: posts answered 250
per second; D: posts whose every copy reached the sink, per second, from the first send; L: the
p99 of the time from sending a post to its 250.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    POST_ADDRESS,
    AppProcess,
    AppRunner,
    CountingSink,
    Tickets,
    body_text,
    cpu_seconds,
    fresh_database,
    machine,
    member_email,
    peak_rss_mb,
    populate,
    post_bytes,
    quiet_logging,
    wait_or_progress,
    write_config,
)

MEMBERS = 10
PUBLIC_SOURCES = "gov.uk/government/news"


def press_release(n: int, size: int = 3000) -> str:
    """A covering line over a forwarded press release (its own first words) with a public link."""
    release = f"Release number {n} from the press office. " + body_text(size)
    return ("FYI, published this morning.\n\n---------- Forwarded message ---------\n"
            "From: Press Office <press.office@example.gov.uk>\nDate: 25 Nov 2026 at 08:30\n"
            f"Subject: Release {n}\n\n\n{release}\n"
            f"Read the full announcement: https://www.gov.uk/government/news/release-{n}\n")


@dataclass
class Clients(Tickets):
    """The shared work counter and what the client threads saw."""

    run_id: str
    policy: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def message(self, i: int) -> tuple[str, bytes]:
        sender = member_email(i % MEMBERS + 1)
        msgid = f"ingest-{self.run_id}-{i}@council.example"
        body = press_release(i) if self.policy else None
        if i % 3 == 0:  # a reply to the post three before it
            parent = f"ingest-{self.run_id}-{i - 2}@council.example"
            return sender, post_bytes(sender, f"Re: Topic {i - 2}", msgid, in_reply_to=parent,
                                      body=body)
        return sender, post_bytes(sender, f"Topic {i}", msgid, body=body)

    def run(self, port: int) -> None:
        client = smtplib.SMTP("127.0.0.1", port, timeout=120)
        try:
            while (i := self.take()) is not None:
                sender, raw = self.message(i)
                started = time.perf_counter()
                try:
                    client.sendmail(sender, [POST_ADDRESS], raw)
                except smtplib.SMTPException as e:
                    with self._lock:
                        self.errors.append(f"post {i}: {e}")
                    if not isinstance(e, smtplib.SMTPResponseException):
                        client = smtplib.SMTP("127.0.0.1", port, timeout=120)
                    continue
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.latencies.append(elapsed)
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                client.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


@dataclass
class Result:
    """One run's figures."""

    label: str  # "synchronous=FULL", "processes=2"
    posts: int
    accepted: float  # seconds from the first send until every post was answered 250
    delivered: float  # seconds from the first send until every copy was at the sink
    p50: float
    p99: float
    duplicates: int  # copies the sink got more than once (same Message-ID and recipient)

    @property
    def posts_per_s(self) -> float:
        return self.posts / self.accepted

    @property
    def delivered_posts_per_s(self) -> float:
        return self.posts / self.delivered

    def keys(self) -> str:
        return (f"posts={self.posts} seconds={self.accepted:.2f} "
                f"posts_per_s={self.posts_per_s:.1f} "
                f"delivered_posts_per_s={self.delivered_posts_per_s:.1f} "
                f"p99_ms={self.p99 * 1000:.0f}")


def counts(value: str) -> list[int]:
    numbers = [int(v) for v in value.split(",") if v.strip()]
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of process counts, e.g. 1,2,4")
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--connections", type=int, default=4,
                        help="delivery connections from Commonroom to the sink (per process)")
    parser.add_argument("--db", default="sqlite",
                        help="'sqlite' (a temp file) or a postgresql:// URL of a server on "
                             "which a throw-away database is created")
    parser.add_argument("--synchronous", default="FULL",
                        help="SQLite's synchronous setting(s), comma-separated, one run each: "
                             "FULL (the server's) and/or NORMAL")
    parser.add_argument("--processes", type=counts, default=None,
                        help="PostgreSQL only: run the App in N child processes sharing the "
                             "store, one run per N (comma-separated, e.g. 1,2,4)")
    parser.add_argument("--policy", action="store_true",
                        help="every member under the participation policy; posts forward press "
                             "releases (public domain), so each is compared with earlier ones")
    args = parser.parse_args()
    if args.processes and args.db == "sqlite":
        parser.error("--processes needs PostgreSQL (--db postgresql://...): a SQLite store is "
                     "written by one process, so there is nothing to scale")
    quiet_logging()
    settings = [v.strip().upper() for v in args.synchronous.split(",") if v.strip()]
    if args.db != "sqlite":
        settings = settings[:1]  # the setting is SQLite's
    under = " under the participation policy" if args.policy else ""
    print(f"ingest: {args.posts:,} posts from {args.clients} concurrent smtplib clients to a "
          f"{MEMBERS}-member list{under}; db={'sqlite' if args.db == 'sqlite' else 'postgresql'}; "
          f"{machine()}; load average {os.getloadavg()[0]:.1f}")
    results: list[Result] = []
    for n in args.processes or [None]:
        for synchronous in settings if n is None else ["FULL"]:
            label = f"processes={n}" if n else f"synchronous={synchronous}"
            print(f" {label}")
            result = run_once(args, synchronous, label, n)
            print(f"  {label} {result.keys()} duplicates={result.duplicates}")
            results.append(result)
    if args.processes:
        print_scaling(results)
    if any(r.duplicates for r in results):
        print("  DUPLICATES: some copies reached the sink more than once")
    first = results[0]  # the server's setting (FULL), or the first process count
    policy = " policy=on" if args.policy else ""
    print(f"ingest{policy} {first.keys()}")


def print_scaling(results: list[Result]) -> None:
    base = results[0]
    print("  processes  accepted posts/s  delivered posts/s  speed-up (accepted, delivered)"
          "  p99 ms  duplicates")
    for r in results:
        print(f"  {r.label.split('=')[1]:>9}  {r.posts_per_s:16.1f}  "
              f"{r.delivered_posts_per_s:17.1f}  "
              f"{r.posts_per_s / base.posts_per_s:13.2f}x "
              f"{r.delivered_posts_per_s / base.delivered_posts_per_s:9.2f}x  "
              f"{r.p99 * 1000:6.0f}  {r.duplicates:10d}")


@contextmanager
def apps(config: Path, url: str, synchronous: str, processes: int | None
         ) -> Iterator[tuple[list[int], Callable[[], float]]]:
    """The App in this process (``processes`` None) or in N child processes: their SMTP ports
    and a function giving their CPU seconds so far."""
    if processes is None:
        runner = AppRunner(config, url, synchronous=synchronous).start()
        try:
            yield [runner.port], cpu_seconds
        finally:
            runner.stop()
        return
    children: list[AppProcess] = []
    try:
        for n in range(processes):
            children.append(AppProcess(config, url, name=f"app-{n}"))
        yield [c.port for c in children], lambda: sum(c.cpu_seconds() for c in children)
    finally:
        for child in children:
            child.stop()


def run_once(args: argparse.Namespace, synchronous: str, label: str,
             processes: int | None) -> Result:
    deliveries = args.posts * MEMBERS
    timeout = max(300.0, deliveries / 50)
    sink = CountingSink(distinct=True)
    try:
        with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as folder:
            settings = ({"policy_scope": "everyone", "public_sources": PUBLIC_SOURCES}
                        if args.policy else {})
            populate(url, MEMBERS, **settings)
            config = write_config(Path(folder), url, sink.port, args.connections)
            with apps(config, url, synchronous, processes) as (ports, app_cpu):
                clients = Clients(args.posts, str(time.time_ns()), policy=args.policy)
                threads = [threading.Thread(target=clients.run, args=(ports[n % len(ports)],),
                                            name=f"client-{n}") for n in range(args.clients)]
                sink.expect(deliveries)
                cpu0, app_cpu0, sink_cpu0 = cpu_seconds(), app_cpu(), sink.cpu_seconds()
                started = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                accepted = time.perf_counter() - started
                cpu_accept = cpu_seconds() - cpu0
                if clients.errors:
                    print(f"  {len(clients.errors)} posts refused, e.g. {clients.errors[0]}")
                    raise SystemExit(1)
                if not wait_or_progress(sink, timeout, "deliveries"):
                    raise SystemExit(f"timed out: the sink got {sink.count.value} of "
                                     f"{deliveries}")
                delivered = time.perf_counter() - started
                time.sleep(1.0 if processes else 0.0)  # a copy sent twice would come now
                cpu_all, sink_cpu = cpu_seconds() - cpu0, sink.cpu_seconds() - sink_cpu0
                apps_cpu = app_cpu() - app_cpu0
                duplicates = int(sink.duplicates.value)
    finally:
        sink.stop()
    result = Result(label, args.posts, accepted, delivered, percentile(clients.latencies, 0.5),
                    percentile(clients.latencies, 0.99), duplicates)
    print(f"  accepted: all {args.posts:,} posts answered 250 in {accepted:.2f} s "
          f"({result.posts_per_s:,.0f} posts/s); per post p50 {result.p50 * 1000:.0f} "
          f"ms, p99 {result.p99 * 1000:.0f} ms")
    print(f"  delivered: all {deliveries:,} copies at the sink {delivered:.2f} s after the "
          f"first post ({result.delivered_posts_per_s:,.0f} posts/s, "
          f"{deliveries / delivered:,.0f} msg/s); {duplicates} duplicates")
    if processes:
        print(f"  CPU: clients (this process) {cpu_all:.1f} s, the {processes} App processes "
              f"{apps_cpu:.1f} s, sink {sink_cpu:.1f} s")
    else:
        print(f"  CPU: this process (App + clients) {cpu_accept:.1f} s until accepted, "
              f"{cpu_all:.1f} s in all; sink {sink_cpu:.1f} s; peak RSS {peak_rss_mb():.0f} MB")
    return result


if __name__ == "__main__":
    main()
