"""Ingest benchmark: many posts from concurrent SMTP clients to a small list.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/ingest.py --posts 2000 --clients 8

A fresh SQLite store (or a throw-away database on the PostgreSQL server given by ``--db``) with a
10-member list, the counting sink as smarthost, ``App`` in this process. ``--clients`` threads
each open one smtplib connection and reuse it, sending ~3 KB posts (a third of them replies, so
threading has work to do) until ``--posts`` have been answered 250. The first figure is the time
until every post is accepted (each 250 means committed to the inbound queue; the pipeline
handles it after, ``listserv/inbound_queue.py``); the second is the time until every delivery
(posts x members) has reached the sink, which needs every post handled. ``--smtp-process``
sets ``[server] smtp_process = true``: the SMTP door in a child process of the App's
(``listserv/door.py``); ``--delivery-process`` sets ``[server] delivery_process = true``: the
outbox worker in a child process of the App's (``listserv/courier.py``). A client waits up
to 10 minutes for a reply (RFC 5321's DATA timeout), so a post answered late shows in the
latencies' max instead of failing the run.

With ``--policy`` the list puts every member under the participation policy (scope "everyone",
gov.uk news as its public source) and each post forwards a press release with a covering line and
a gov.uk link: every post is classified, compared with the earlier public texts (up to 50), and
accepted as public domain, so it becomes one of those texts for the posts after it.

The client threads run in a child process of their own (as a real MTA is another process), so
they do not share the App's GIL; their latencies and errors come back through a pipe, and their
clock (``time.perf_counter``, CLOCK_MONOTONIC) is this process's. ``--clients-in-process`` runs
them in this process, sharing the GIL with the App, as the benchmark did before.

Two floors, measured in the same run after the App's runs (``--no-floor`` skips them), say what
the machine itself allows:

- accept floor: the same clients (in the same kind of process) send the same posts to a bare
  aiosmtpd server in its own process that answers 250 at once: posts/s and p99 with no
  Commonroom behind the 250;
- delivery floor: as many copies as the run delivered (posts x members), of the average size the
  sink saw, sent straight with aiosmtplib to a fresh counting sink of the same kind over as many
  connections as the App's delivery used (fanout.py's floor, ``bench.common.run_floor``):
  copies/s, and the posts/s that means (copies/s / members).

Then a line gives the first run's accepted rate as a fraction of the accept floor and its
delivered rate as a fraction of the delivery floor. On 2 vCPUs the goals (500 posts/s accepted,
260 delivered) are bounded by these floors, not only by Commonroom: 260 posts/s delivered is
2,600 copies/s, and the sink alone spends ~0.5-0.7 ms of CPU a copy (the sender ~0.4 more), so
the delivery floor itself sits below 260 posts/s on this machine; and whatever CPU the sink,
the clients and the SMTP exchanges take is not Commonroom's to spend on accepting posts.

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
import asyncio
import dataclasses
import multiprocessing as mp
import os
import smtplib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from bench.common import (
    POST_ADDRESS,
    AppProcess,
    AppRunner,
    CountingSink,
    FloorCopies,
    Tickets,
    add_sink_option,
    body_text,
    cpu_seconds,
    fresh_database,
    machine,
    member_email,
    peak_rss_mb,
    populate,
    post_bytes,
    quiet_logging,
    run_floor,
    wait_or_progress,
    write_config,
)

MEMBERS = 10
# How long a client waits for a reply: RFC 5321 (4.5.3.2) gives an MTA 10 minutes for the answer
# to the end of DATA, so a post the App answers late shows in the latencies instead of failing.
CLIENT_TIMEOUT = 600.0
PUBLIC_SOURCES = "gov.uk/government/news"

_CTX = mp.get_context("spawn")


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
        client = smtplib.SMTP("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
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
                        client = smtplib.SMTP("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
                    continue
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.latencies.append(elapsed)
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                client.close()


@dataclass(frozen=True)
class ClientPlan:
    """What the client threads send (picklable, for the clients' own process)."""

    posts: int
    clients: int
    run_id: str
    policy: bool
    ports: tuple[int, ...]  # client thread k sends to ports[k % len(ports)]


@dataclass
class Sent:
    """What the client threads saw. ``started`` (the first send) and ``finished`` (the last
    250) are ``time.perf_counter()`` values, CLOCK_MONOTONIC on Linux: one clock in every
    process, so the parent times the deliveries from the clients' ``started``."""

    started: float
    finished: float
    latencies: list[float]
    errors: list[str]
    cpu: float  # CPU seconds of the clients' process from the first send to the last 250
    pid: int

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def send_all(plan: ClientPlan) -> Sent:
    """The client threads, in this process, until every post has been answered."""
    clients = Clients(plan.posts, plan.run_id, policy=plan.policy)
    threads = [threading.Thread(target=clients.run, args=(plan.ports[n % len(plan.ports)],),
                                name=f"client-{n}") for n in range(plan.clients)]
    cpu0 = time.process_time()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished = time.perf_counter()
    return Sent(started, finished, clients.latencies, clients.errors,
                time.process_time() - cpu0, os.getpid())


class ClientProcess:
    """``send_all`` in a child process of its own, as a real MTA is another process: the
    clients no longer share the App's GIL. It starts (imports done) when made, sends on
    ``send``, and its figures come back through a pipe."""

    def __init__(self, plan: ClientPlan) -> None:
        self._conn, child = _CTX.Pipe()
        self._proc = _CTX.Process(target=_clients_main, args=(child, plan), name="ingest-clients",
                                  daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60):
            self.stop()
            raise RuntimeError("the client process did not start")
        self._conn.recv()  # ready

    def send(self, timeout: float) -> Sent:
        try:
            self._conn.send("go")
            if not self._conn.poll(timeout):
                raise SystemExit(f"the clients did not finish within {timeout:.0f} s")
            return Sent(**self._conn.recv())
        except EOFError:
            raise SystemExit(f"the client process failed (exit code {self._proc.exitcode})"
                             ) from None
        finally:
            self.stop()

    def stop(self) -> None:
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)
        self._conn.close()


def _clients_main(conn: Connection, plan: ClientPlan) -> None:
    quiet_logging()
    conn.send("ready")
    conn.recv()  # go
    conn.send(dataclasses.asdict(send_all(plan)))  # a dict: __main__'s classes differ here


def ready_clients(plan: ClientPlan, in_process: bool) -> Callable[[float], Sent]:
    """A function that sends every post and waits (at most its argument, in seconds): the
    clients' process is started, its imports done, before the caller starts a clock."""
    if in_process:
        return lambda timeout: send_all(plan)
    return ClientProcess(plan).send


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
    copy_bytes: int  # the average size of a copy at the sink
    connections: int  # delivery connections to the sink, all App processes together

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
    parser.add_argument("--clients-in-process", action="store_true",
                        help="run the client threads in this process, sharing the GIL with the "
                             "App (the old way), not in a process of their own")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the accept and delivery floors")
    parser.add_argument("--smtp-process", action="store_true",
                        help="[server] smtp_process = true: the App accepts SMTP in a child "
                             "process of its own (listserv/door.py)")
    parser.add_argument("--delivery-process", action="store_true",
                        help="[server] delivery_process = true: the App delivers from a child "
                             "process of its own (listserv/courier.py)")
    parser.add_argument("--handling-writers", type=int, default=None,
                        help="[server] handling_writers (PostgreSQL; default: the server's)")
    add_sink_option(parser)
    args = parser.parse_args()
    if args.processes and args.db == "sqlite":
        parser.error("--processes needs PostgreSQL (--db postgresql://...): a SQLite store is "
                     "written by one process, so there is nothing to scale")
    quiet_logging()
    settings = [v.strip().upper() for v in args.synchronous.split(",") if v.strip()]
    if args.db != "sqlite":
        settings = settings[:1]  # the setting is SQLite's
    under = " under the participation policy" if args.policy else ""
    where = "this process" if args.clients_in_process else "a process of their own"
    print(f"ingest: {args.posts:,} posts from {args.clients} concurrent smtplib clients ({where}) "
          f"to a {MEMBERS}-member list{under}; db={'sqlite' if args.db == 'sqlite' else 'postgresql'}; "
          f"sink {args.sink}; "
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
    if not args.no_floor:
        floors = measure_floors(args, results[0])
        for r in results:
            print(compare(r, floors, labelled=len(results) > 1))
    first = results[0]  # the server's setting (FULL), or the first process count
    policy = " policy=on" if args.policy else ""
    print(f"ingest{policy} {first.keys()}")


@dataclass(frozen=True)
class Floors:
    """What the machine does with Commonroom taken out: posts/s accepted and posts/s delivered."""

    accept_posts_per_s: float
    delivery_posts_per_s: float


def measure_floors(args: argparse.Namespace, first: Result) -> Floors:
    """Both floors, each printed on its own line; ``first`` gives the copies' size and the
    delivery connections."""
    sent, server_cpu = accept_floor(args)
    print(f"  accept floor: {args.posts:,} posts from {args.clients} smtplib clients "
          f"({'this' if args.clients_in_process else 'own'} process) to a bare aiosmtpd server "
          f"answering 250 at once (own process): {args.posts / sent.seconds:,.0f} posts/s "
          f"({sent.seconds:.2f} s); p50 {percentile(sent.latencies, 0.5) * 1000:.1f} ms, p99 "
          f"{percentile(sent.latencies, 0.99) * 1000:.1f} ms; CPU: clients {sent.cpu:.2f} s, "
          f"server {server_cpu:.2f} s ({sent.cpu / args.posts * 1000:.2f} + "
          f"{server_cpu / args.posts * 1000:.2f} ms a post)")
    copies = args.posts * MEMBERS
    seconds, sender_cpu, sink_cpu = delivery_floor(copies, first.copy_bytes, first.connections,
                                                    args.sink)
    print(f"  delivery floor: {copies:,} copies of {first.copy_bytes:,} bytes straight with "
          f"aiosmtplib over {first.connections} connections to the counting sink: "
          f"{copies / seconds:,.0f} copies/s = {copies / seconds / MEMBERS:,.0f} posts/s "
          f"({seconds:.2f} s); CPU: sender {sender_cpu:.1f} s, sink {sink_cpu:.1f} s "
          f"({sender_cpu / copies * 1000:.2f} + {sink_cpu / copies * 1000:.2f} ms a copy)")
    return Floors(args.posts / sent.seconds, copies / seconds / MEMBERS)


def accept_floor(args: argparse.Namespace) -> tuple[Sent, float]:
    """The same clients (in the same kind of process) and the same posts against an aiosmtpd
    server that only counts and answers 250 at once: what the 250s cost without Commonroom.
    Returns what the clients saw and the server's CPU seconds."""
    server = CountingSink(kind="aiosmtpd")  # Commonroom's SMTP door is aiosmtpd too
    try:
        plan = ClientPlan(args.posts, args.clients, f"floor{time.time_ns()}", args.policy,
                          (server.port,))
        send = ready_clients(plan, args.clients_in_process)
        server.expect(args.posts)
        cpu0 = server.cpu_seconds()
        sent = send(max(300.0, args.posts / 10))
        if sent.errors or not server.wait(30):
            raise SystemExit(f"accept floor: {len(sent.errors)} posts refused, the server "
                             f"counted {server.count.value} of {args.posts}")
        return sent, server.cpu_seconds() - cpu0
    finally:
        server.stop()


def delivery_floor(copies: int, size: int, connections: int,
                   kind: str = "lean") -> tuple[float, float, float]:
    """``copies`` copies of ``size`` bytes, ten to a post with its Message-ID, sent straight
    to a fresh counting sink of the same kind (distinct): fanout.py's floor. Seconds, and CPU
    seconds of the sender (this process) and of the sink."""
    sink = CountingSink(distinct=True, kind=kind)
    try:
        plan = FloorCopies(copies, size, per_post=MEMBERS, run_id=str(time.time_ns()))
        return asyncio.run(run_floor(sink, plan, connections, max(300.0, copies / 50)))
    finally:
        sink.stop()


def compare(result: Result, floors: Floors, labelled: bool) -> str:
    label = f" ({result.label})" if labelled else ""
    return (f"  against the floors{label}: accepted {result.posts_per_s:,.1f} posts/s = "
            f"{result.posts_per_s / floors.accept_posts_per_s:.2f} of the accept floor "
            f"({floors.accept_posts_per_s:,.0f}); delivered {result.delivered_posts_per_s:,.1f} "
            f"posts/s = {result.delivered_posts_per_s / floors.delivery_posts_per_s:.2f} of the "
            f"delivery floor ({floors.delivery_posts_per_s:,.0f})")


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
         ) -> Iterator[tuple[list[int], Callable[[], float], Callable[[], float],
                             Callable[[], float]]]:
    """The App in this process (``processes`` None) or in N child processes: their SMTP ports,
    a function giving their CPU seconds so far, one giving the CPU seconds of the App's SMTP
    process (``--smtp-process``; 0 without one), and one giving those of its delivery process
    (``--delivery-process``; 0 without one)."""
    if processes is None:
        runner = AppRunner(config, url, synchronous=synchronous).start()
        door, courier = runner.app.door, runner.app.courier
        pid = door._process.pid if door is not None else None
        courier_pid = courier.pid if courier is not None else None
        try:
            yield ([runner.port], cpu_seconds, lambda: cpu_seconds(pid) if pid else 0.0,
                   lambda: cpu_seconds(courier_pid) if courier_pid else 0.0)
        finally:
            runner.stop()
        return
    children: list[AppProcess] = []
    try:
        for n in range(processes):
            children.append(AppProcess(config, url, name=f"app-{n}"))
        yield ([c.port for c in children], lambda: sum(c.cpu_seconds() for c in children),
               lambda: 0.0, lambda: 0.0)
    finally:
        for child in children:
            child.stop()


def run_once(args: argparse.Namespace, synchronous: str, label: str,
             processes: int | None) -> Result:
    deliveries = args.posts * MEMBERS
    timeout = max(300.0, deliveries / 50)
    sink = CountingSink(distinct=True, kind=args.sink)
    try:
        with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as folder:
            settings = ({"policy_scope": "everyone", "public_sources": PUBLIC_SOURCES}
                        if args.policy else {})
            populate(url, MEMBERS, **settings)
            config = write_config(Path(folder), url, sink.port, args.connections,
                                  smtp_process=args.smtp_process,
                                  delivery_process=args.delivery_process,
                                  handling_writers=args.handling_writers)
            with apps(config, url, synchronous, processes) as (ports, app_cpu, door_cpu,
                                                               courier_cpu):
                plan = ClientPlan(args.posts, args.clients, str(time.time_ns()), args.policy,
                                  tuple(ports))
                send = ready_clients(plan, args.clients_in_process)
                sink.expect(deliveries)
                app_cpu0, sink_cpu0, door_cpu0 = app_cpu(), sink.cpu_seconds(), door_cpu()
                courier_cpu0 = courier_cpu()
                sent = send(max(600.0, args.posts / 2))  # at least 2 posts/s
                cpu_accept = app_cpu() - app_cpu0
                door_accept = door_cpu() - door_cpu0
                at_accept = int(sink.count.value)  # copies delivered while posts still came
                if sent.errors:
                    print(f"  {len(sent.errors)} posts refused, e.g. {sent.errors[0]}")
                    raise SystemExit(1)
                if not wait_or_progress(sink, timeout, "deliveries"):
                    raise SystemExit(f"timed out: the sink got {sink.count.value} of "
                                     f"{deliveries}")
                delivered = time.perf_counter() - sent.started
                time.sleep(1.0 if processes else 0.0)  # a copy sent twice would come now
                cpu_all, sink_cpu = app_cpu() - app_cpu0, sink.cpu_seconds() - sink_cpu0
                courier_all = courier_cpu() - courier_cpu0
                duplicates = int(sink.duplicates.value)
                copy_bytes = round(sink.nbytes.value / max(sink.count.value + duplicates, 1))
    finally:
        sink.stop()
    result = Result(label, args.posts, sent.seconds, delivered, percentile(sent.latencies, 0.5),
                    percentile(sent.latencies, 0.99), duplicates, copy_bytes,
                    args.connections * (processes or 1))
    print(f"  accepted: all {args.posts:,} posts answered 250 in {sent.seconds:.2f} s "
          f"({result.posts_per_s:,.0f} posts/s); per post p50 {result.p50 * 1000:.0f} ms, "
          f"p99 {result.p99 * 1000:.0f} ms, max {max(sent.latencies) * 1000:,.0f} ms; "
          f"{at_accept:,} of the {deliveries:,} copies at the sink by then")
    print(f"  delivered: all {deliveries:,} copies ({copy_bytes:,} bytes each) at the sink "
          f"{delivered:.2f} s after the first post ({result.delivered_posts_per_s:,.0f} "
          f"posts/s, {deliveries / delivered:,.0f} msg/s); {duplicates} duplicates")
    where = "this process" if args.clients_in_process else "own process"
    if processes:
        print(f"  CPU: clients ({where}) {sent.cpu:.1f} s, the {processes} App processes "
              f"{cpu_all:.1f} s, sink {sink_cpu:.1f} s")
    elif args.clients_in_process:
        print(f"  CPU: this process (App + clients) {cpu_accept:.1f} s until accepted, "
              f"{cpu_all:.1f} s in all; sink {sink_cpu:.1f} s; peak RSS {peak_rss_mb():.0f} MB")
    else:
        print(f"  CPU: clients (own process) {sent.cpu:.1f} s; App (this process) "
              f"{cpu_accept:.1f} s until accepted, {cpu_all:.1f} s in all; sink {sink_cpu:.1f} s;"
              f" peak RSS {peak_rss_mb():.0f} MB")
    if args.smtp_process and not processes:
        print(f"  CPU: SMTP process {door_accept:.2f} s until accepted "
              f"({door_accept / args.posts * 1000:.2f} ms a post)")
    if args.delivery_process and not processes:
        print(f"  CPU: delivery process {courier_all:.1f} s in all "
              f"({courier_all / deliveries * 1000:.2f} ms a copy)")
    return result


if __name__ == "__main__":
    main()
