"""Fan-out benchmark: one post to a list of N "each post" members, against a floor.

    cd /work/main && PYTHONPATH=. .venv/bin/python bench/fanout.py --members 10000
    PYTHONPATH=. .venv/bin/python bench/fanout.py --memory-sweep

Commonroom: a fresh store (SQLite in a temp dir, or a throw-away database on the PostgreSQL
server given by ``--db``) with one list of N members (bulk-inserted with SQLAlchemy core, in a
child process), the counting sink as smarthost, and ``App`` in this process with ``connections``
delivery connections. One ~3 KB post is sent with smtplib; the clock runs from the 250 until the
sink has accepted all N deliveries.

Floor: the same N personalised messages, of the same size as Commonroom's (measured at the sink),
sent straight with aiosmtplib to the same sink over the same number of connections (one
connection per task, reused; MAIL, RCPT, DATA per message, as Commonroom's transport does).

``--delivery-process`` sets ``[server] delivery_process = true``: the outbox worker runs in a
child process of the App's (``listserv/courier.py``), as in ``bench/ingest.py`` and
``bench/flood.py``; its CPU is reported apart, and "written back" is then read from the store.

``--dkim rsa|ed25519``: the same post is first sent unsigned, then signed with a fresh key (a
second App on the same store and sink); the signed run is the one compared with the floor, and
its ratio to the unsigned run is printed.

Peak RSS is this process's (``ru_maxrss``): it holds the App, and the floor's sender, but not the
sink or the set-up, which run in child processes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    AppRunner,
    CountingSink,
    FloorCopies,
    add_sink_option,
    cpu_seconds,
    current_rss_mb,
    fresh_database,
    machine,
    member_email,
    peak_rss_mb,
    populate,
    post_bytes,
    quiet_logging,
    run_floor,
    send_post,
    wait_or_progress,
    write_config,
)

SWEEP = (1_000, 10_000, 100_000)


@dataclass(frozen=True)
class CommonroomRun:
    accept_seconds: float  # smtplib send until the 250 (includes the fan-out INSERT ... SELECT)
    seconds: float  # the 250 until the sink has all N
    written_back_seconds: float  # the 250 until no outbox row is due or sending
    message_bytes: int  # average size of one delivered message, as the sink saw it
    rss_before_mb: float
    sent_rows: int
    app_cpu: float  # CPU seconds of this process (the App) from the send to the last delivery
    sink_cpu: float  # CPU seconds of the sink in the same time
    courier_cpu: float | None  # CPU seconds of the delivery process in the same time (None: none)


def run_commonroom(url: str, members: int, connections: int, sink: CountingSink,
                   folder: Path, timeout: float, delivery_process: bool = False,
                   **delivery: str) -> CommonroomRun:
    from sqlalchemy import func, select

    from listserv.models import Outbox

    config = write_config(folder, url, sink.port, connections,
                          delivery_process=delivery_process, **delivery)
    runner = AppRunner(config, url).start()
    try:
        courier = runner.app.courier
        courier_pid = courier.pid if courier is not None else None

        def courier_cpu() -> float:
            return cpu_seconds(courier_pid) if courier_pid else 0.0

        rss_before = current_rss_mb()
        sink.expect(members)
        raw = post_bytes(member_email(1), "What we learnt moving training to the cloud",
                         f"fanout-{time.time_ns()}@council1.example")
        cpu0, sink_cpu0, courier_cpu0 = cpu_seconds(), sink.cpu_seconds(), courier_cpu()
        started = time.perf_counter()
        send_post(runner.port, member_email(1), raw)
        accepted = time.perf_counter()
        if not wait_or_progress(sink, timeout, "commonroom"):
            raise SystemExit(f"timed out: the sink got {sink.count.value} of {members}")
        finished = time.perf_counter()
        cpu1, sink_cpu1, courier_cpu1 = cpu_seconds(), sink.cpu_seconds(), courier_cpu()
        if runner.app.worker is not None:
            runner.call(runner.app.worker.drain(timeout), timeout + 5)
        else:  # the worker is in the delivery process: ask the store
            wait_written_back(runner.store, timeout)
        written = time.perf_counter()
        with runner.store.engine.connect() as conn:
            sent = conn.execute(select(func.count()).select_from(Outbox).where(
                Outbox.state == "sent")).scalar_one()  # type: ignore[arg-type]
        return CommonroomRun(accept_seconds=accepted - started, seconds=finished - accepted,
                             written_back_seconds=written - accepted,
                             message_bytes=round(sink.nbytes.value / max(sink.count.value, 1)),
                             rss_before_mb=rss_before, sent_rows=int(sent),
                             app_cpu=cpu1 - cpu0, sink_cpu=sink_cpu1 - sink_cpu0,
                             # Printed even when 0.0 (a small fan-out can take less than a
                             # clock tick of the child's CPU): None only without a child.
                             courier_cpu=courier_cpu1 - courier_cpu0 if courier_pid else None)
    finally:
        runner.stop()


def wait_written_back(store: Any, timeout: float) -> None:
    """Until no outbox row is ``pending`` or ``sending`` (the fan-out's rows are all due now),
    polled as ``OutboxWorker.drain`` polls."""
    from sqlalchemy import exists, select

    from listserv.models import Outbox, OutboxState

    states = [OutboxState.PENDING.value, OutboxState.SENDING.value]
    unfinished = select(exists().where(Outbox.state.in_(states)))  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        with store.engine.connect() as conn:
            if not conn.execute(unfinished).scalar():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"the outbox still has rows to write back after {timeout} s")
        time.sleep(0.02)


def dkim_key(folder: Path, algorithm: str) -> dict[str, str]:
    """A fresh key in ``folder``; the [delivery] keys that sign with it."""
    from listserv.dkim import Algorithm, generate

    path = folder / f"bench-{algorithm}.key"
    path.write_bytes(generate(Algorithm(algorithm)).private_bytes())
    return {"dkim_selector": "bench", "dkim_key_file": str(path)}


def report_run(label: str, members: int, run: CommonroomRun) -> None:
    rate = members / run.seconds
    print(f"  {label}: 250 after {run.accept_seconds * 1000:.0f} ms; all {members:,} at "
          f"the sink {run.seconds:.2f} s after the 250 ({rate:,.0f} msg/s); outbox written "
          f"back after {run.written_back_seconds:.2f} s; {run.sent_rows:,} rows sent; "
          f"{run.message_bytes:,} bytes per message")
    courier = f", delivery process {run.courier_cpu:.1f} s" if run.courier_cpu is not None else ""
    print(f"  CPU during the fan-out: App process {run.app_cpu:.1f} s{courier}, "
          f"sink {run.sink_cpu:.1f} s")


def one_run(members: int, connections: int, db: str, floor: bool, dkim: str | None,
            sink_kind: str = "lean", delivery_process: bool = False) -> None:
    where = "; delivery process" if delivery_process else ""
    print(f"fan-out of one post to {members:,} members, {connections} connections, "
          f"db={'sqlite' if db == 'sqlite' else 'postgresql'}; sink {sink_kind}{where}; "
          f"{machine()}")
    timeout = max(120.0, members / 100)
    sink = CountingSink(kind=sink_kind)
    unsigned: CommonroomRun | None = None
    try:
        with fresh_database(db) as url, tempfile.TemporaryDirectory() as folder:
            setup = populate(url, members)
            print(f"  set-up (schema, list, {members:,} members, bulk insert): {setup:.1f} s")
            if dkim:  # the same post unsigned first, in the same store and sink
                unsigned = run_commonroom(url, members, connections, sink, Path(folder), timeout,
                                          delivery_process)
                report_run("commonroom unsigned", members, unsigned)
            signing = dkim_key(Path(folder), dkim) if dkim else {}
            run = run_commonroom(url, members, connections, sink, Path(folder), timeout,
                                 delivery_process, **signing)
        peak_app = peak_rss_mb()
        report_run(f"commonroom DKIM {dkim}" if dkim else "commonroom", members, run)
        print(f"  memory: RSS {run.rss_before_mb:.0f} MB with the App idle, peak "
              f"{peak_app:.0f} MB after the fan-out")
        floor_seconds = float("nan")
        if floor:
            floor_seconds, cpu, sink_cpu = asyncio.run(run_floor(
                sink, FloorCopies(members, run.message_bytes), connections, timeout))
            print(f"  floor: {members:,} messages of {run.message_bytes:,} bytes straight "
                  f"with aiosmtplib in {floor_seconds:.2f} s ({members / floor_seconds:,.0f} "
                  f"msg/s); CPU: sender {cpu:.1f} s, sink {sink_cpu:.1f} s")
    finally:
        sink.stop()
    ratio = run.seconds / floor_seconds
    print(f"  ratio commonroom/floor: {ratio:.2f} (goal: at most 2)")
    if unsigned is not None:
        cost = run.seconds / unsigned.seconds
        print(f"  ratio signed/unsigned: {cost:.2f}; signing CPU per copy about "
              f"{(run.app_cpu - unsigned.app_cpu) / members * 1e6:.0f} µs")
        print(f"fanout-dkim algorithm={dkim} seconds={run.seconds:.2f} "
              f"unsigned_seconds={unsigned.seconds:.2f} ratio_to_unsigned={cost:.2f}")
    print(f"fanout members={members} seconds={run.seconds:.2f} floor_seconds={floor_seconds:.2f} "
          f"ratio={ratio:.2f} peak_rss_mb={peak_rss_mb():.0f}")


LINE = re.compile(r"^fanout members=(\d+) seconds=(\S+) floor_seconds=(\S+) ratio=(\S+) "
                  r"peak_rss_mb=(\S+)$", re.MULTILINE)


def memory_sweep(connections: int, db: str, sink: str = "lean",
                 delivery_process: bool = False) -> None:
    print(f"memory sweep: one post to {', '.join(f'{n:,}' for n in SWEEP)} members, each in a "
          f"fresh process; {machine()}")
    peaks: list[str] = []
    for n in SWEEP:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--members", str(n),
             "--connections", str(connections), "--db", db, "--sink", sink,
             *(["--delivery-process"] if delivery_process else [])],
            capture_output=True, text=True, check=False)
        match = LINE.search(proc.stdout)
        if proc.returncode != 0 or match is None:
            print(proc.stdout + proc.stderr)
            raise SystemExit(f"the run with {n:,} members failed")
        _, seconds, floor_s, ratio, rss = match.groups()
        peaks.append(rss)
        print(f"  {n:>7,} members: peak RSS {rss:>4} MB; {seconds} s (floor {floor_s} s, "
              f"ratio {ratio})")
    print(f"fanout-memory members={','.join(map(str, SWEEP))} peak_rss_mb={','.join(peaks)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--db", default="sqlite",
                        help="'sqlite' (a temp file) or a postgresql:// URL of a server on "
                             "which a throw-away database is created")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor")
    parser.add_argument("--delivery-process", action="store_true",
                        help="[server] delivery_process = true: the App delivers from a child "
                             "process of its own (listserv/courier.py)")
    parser.add_argument("--dkim", choices=["rsa", "ed25519"],
                        help="also run DKIM-signed with a fresh key (after an unsigned run of "
                             "the same post) and print the ratio to unsigned")
    parser.add_argument("--memory-sweep", action="store_true",
                        help=f"run {', '.join(map(str, SWEEP))} members, each in a fresh "
                             "process, and print the peak RSS of each")
    add_sink_option(parser)
    args = parser.parse_args()
    quiet_logging()
    if args.memory_sweep:
        memory_sweep(args.connections, args.db, args.sink, args.delivery_process)
    else:
        one_run(args.members, args.connections, args.db, not args.no_floor, args.dkim, args.sink,
                args.delivery_process)


if __name__ == "__main__":
    main()
