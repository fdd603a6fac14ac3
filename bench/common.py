"""Shared pieces of the benchmarks: a counting SMTP sink, a store with members, the App.

- ``CountingSink`` is an SMTP server in its own *process* (so its CPU does not compete for
  this process's GIL, and its memory is not in this process's peak RSS). It stores nothing: it
  counts accepted messages and their bytes, and sets an event when a target count is reached.
  The same sink serves the floor and Commonroom. With ``distinct=True`` it counts each
  (Message-ID, recipient) once and counts repeats apart, as duplicates. ``kind``: "lean" (the
  default, ``bench/leansink.py``, ~0.1 ms of CPU a copy) or "aiosmtpd" (as before, ~0.6 ms a
  copy, to reproduce earlier figures); the benches take ``--sink``.
- ``populate`` builds the store in a child process (so set-up memory is not counted either): the
  schema through Alembic, one list, and N members bulk-inserted with SQLAlchemy core
  ``insert()`` executemany in chunks (not ``add_member`` in a loop, which would take minutes).
- ``FloorCopies`` and ``run_floor``: the delivery floor, personalised copies of a given size sent
  straight with aiosmtplib to a sink over a number of connections (fanout.py's and ingest.py's).
- ``AppRunner`` runs ``listserv.serve.App`` in a background thread with its own event loop, in
  this process, as the tests' harness does; a DNS double answers the DMARC lookups (NXDOMAIN)
  so the benchmarks never wait on a real resolver. ``AppProcess`` runs the same App in a child
  process of its own (several of them share one PostgreSQL store in ``ingest.py --processes``).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import hmac
import itertools
import logging
import multiprocessing as mp
import os
import re
import resource
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from listserv.addresses import Kind, list_address, verp_sender

DOMAIN = "lists.example.org"
LIST = "bench"
POST_ADDRESS = list_address(LIST, DOMAIN)
CHUNK = 5000  # rows per executemany in the set-up

_CTX = mp.get_context("spawn")


def quiet_logging() -> None:
    """Root logger at WARNING: per-message INFO logs must not dominate the figures."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


def peak_rss_mb() -> float:
    """This process's peak resident set (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads) so far; this one by default."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc={os.cpu_count()} cpu={model!r}"


def member_email(i: int) -> str:
    return f"member{i:06d}@council{i % 97}.example"


def verp(i: int) -> str:
    return verp_sender(LIST, DOMAIN, member_email(i))


# --- the counting sink ---------------------------------------------------------------------


SINKS = ("lean", "aiosmtpd")


def add_sink_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sink", choices=SINKS, default=SINKS[0],
                        help="the smarthost double: 'lean' (bench/leansink.py, an asyncio "
                             "Protocol, little CPU) or 'aiosmtpd' (the one earlier figures "
                             "were measured with)")


class CountingSink:
    """An SMTP sink in a child process that only counts (messages and bytes).

    ``distinct``: ``count`` is of distinct (Message-ID, recipient) pairs, and a pair seen again
    in the same run adds to ``duplicates`` instead (a copy sent twice). ``kind``: which server
    (``SINKS``); both count the same."""

    def __init__(self, *, distinct: bool = False, kind: str = "lean") -> None:
        if kind not in SINKS:
            raise ValueError(f"unknown sink {kind!r}: one of {', '.join(SINKS)}")
        self.kind = kind
        self.count = _CTX.RawValue(ctypes.c_longlong, 0)
        self.nbytes = _CTX.RawValue(ctypes.c_longlong, 0)
        self.target = _CTX.RawValue(ctypes.c_longlong, 0)
        self.duplicates = _CTX.RawValue(ctypes.c_longlong, 0)
        self.run = _CTX.RawValue(ctypes.c_longlong, 0)  # a new run forgets the pairs seen
        self.done: MpEvent = _CTX.Event()
        parent, child = _CTX.Pipe()
        counters = _Counters(self.count, self.nbytes, self.target, self.duplicates, self.run,
                             distinct)
        self._proc = _CTX.Process(target=_sink_main, name="counting-sink", daemon=True,
                                  args=(child, counters, self.done, kind))
        self._proc.start()
        if not parent.poll(30):
            raise RuntimeError("the counting sink did not start")
        self.port: int = parent.recv()
        self.host = "127.0.0.1"

    def cpu_seconds(self) -> float:
        assert self._proc.pid is not None
        return cpu_seconds(self._proc.pid)

    def expect(self, n: int) -> None:
        """Start a new run (only while no mail is arriving): zero the counters, aim at ``n``."""
        self.done.clear()
        self.count.value = 0
        self.nbytes.value = 0
        self.duplicates.value = 0
        self.run.value += 1
        self.target.value = n

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(10)


@dataclass
class _Counters:
    """The sink's shared counters (given to its process)."""

    count: Any
    nbytes: Any
    target: Any
    duplicates: Any
    run: Any
    distinct: bool


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class _CountingHandler:
    def __init__(self, counters: _Counters, done: MpEvent) -> None:
        self.c, self.done = counters, done
        self.seen: set[tuple[bytes, str]] = set()
        self.run = 0

    def count(self, rcpt_tos: list[str], content: bytes) -> None:
        """One message accepted for ``rcpt_tos``."""
        c = self.c
        if c.distinct:
            if self.run != c.run.value:
                self.seen.clear()
                self.run = c.run.value
            head = content[:content.find(b"\r\n\r\n")]
            found = _MESSAGE_ID.search(head)
            msgid = found.group(1) if found else content  # no Message-ID: the bytes themselves
            for rcpt in rcpt_tos:
                key = (msgid, rcpt.lower())
                if key in self.seen:
                    c.duplicates.value += 1
                else:
                    self.seen.add(key)
                    c.count.value += 1
        else:
            c.count.value += 1
        c.nbytes.value += len(content)
        if c.count.value >= c.target.value > 0:
            self.done.set()


async def serve_sink(kind: str, count: Callable[[list[str], bytes], None]) -> asyncio.Server:
    """A sink of ``kind`` on a free loopback port calling ``count(rcpt_tos, content)`` for each
    message (content as aiosmtpd's ``envelope.original_content``)."""
    loop = asyncio.get_running_loop()
    if kind == "lean":
        from bench.leansink import serve

        return await serve(count, hostname="sink.example", ident="bench-sink")
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            count(envelope.rcpt_tos, envelope.original_content or b"")
            return "250 2.0.0 OK"

    handler = Handler()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="sink.example", ident="bench-sink",
                     enable_SMTPUTF8=True),
        host="127.0.0.1", port=0)


def _sink_main(conn: Connection, counters: _Counters, done: MpEvent, kind: str) -> None:
    quiet_logging()
    handler = _CountingHandler(counters, done)

    async def serve() -> None:
        server = await serve_sink(kind, handler.count)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()  # until terminated

    asyncio.run(serve())


# --- the store -----------------------------------------------------------------------------


@contextmanager
def fresh_database(db: str) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file in a temp dir, or a throw-away database
    created on the PostgreSQL server that ``db`` points at (dropped afterwards)."""
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="commonroom-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'commonroom.db'}"
        return
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    from listserv.store import engine_url

    name = f"commonroom_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(engine_url(db), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        # The URL's database swapped, its query kept (``?host=/var/run/postgresql``: the
        # server's Unix socket).
        yield make_url(db).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def populate(url: str, members: int, **list_settings: Any) -> float:
    """Schema, one list (``list_settings`` are MailingList columns), ``members`` "each post"
    members; in a child process. Returns seconds."""
    started = time.perf_counter()
    proc = _CTX.Process(target=_populate_main, args=(url, members, list_settings),
                        name="bench-setup")
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"set-up failed (exit code {proc.exitcode})")
    return time.perf_counter() - started


def _populate_main(url: str, members: int, list_settings: dict[str, Any]) -> None:
    quiet_logging()
    from sqlalchemy import Table, insert, text

    from listserv.models import (
        Address,
        DeliveryMode,
        MailingList,
        Person,
        PersonKind,
        Role,
        Subscription,
        utcnow,
    )
    from listserv.store import Store

    person: Table = Person.__table__  # type: ignore[attr-defined]
    address: Table = Address.__table__  # type: ignore[attr-defined]
    subscription: Table = Subscription.__table__  # type: ignore[attr-defined]

    store = Store(url)
    store.upgrade()
    now = utcnow()
    with store.session() as s:
        # No per-sender rate limit: the ingest benchmark sends thousands of posts per hour per member.
        ml = MailingList(name=LIST, description="Benchmark list",
                         **{"max_posts_per_hour": 0, **list_settings})
        s.add(ml)
        s.flush()
        list_id = ml.id
    for start in range(1, members + 1, CHUNK):
        ids = range(start, min(start + CHUNK, members + 1))
        with store.engine.begin() as conn:
            conn.execute(insert(person), [
                {"id": i, "display_name": f"Member {i}", "organisation": "Some Council",
                 "kind": PersonKind.MEMBER.value, "created_at": now} for i in ids])
            conn.execute(insert(address), [
                {"id": i, "email": member_email(i), "person_id": i, "verified_at": now}
                for i in ids])
            conn.execute(insert(subscription), [
                {"id": i, "list_id": list_id, "address_id": i, "role": Role.MEMBER.value,
                 "delivery_mode": DeliveryMode.EACH.value, "moderation": "", "created_at": now}
                for i in ids])
    if store.is_postgres:  # explicit ids leave the sequences behind
        with store.engine.begin() as conn:
            for table in ("person", "address", "subscription"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    store.dispose()


def write_config(folder: Path, url: str, sink_port: int, connections: int,
                 *, smtp_process: bool = False, delivery_process: bool = False,
                 handling_writers: int | None = None, **delivery: str) -> Path:
    """``delivery``: more [delivery] keys (string values), e.g. dkim_selector;
    ``smtp_process``: [server] smtp_process (SMTP in a child process, listserv/door.py);
    ``delivery_process``: [server] delivery_process (the outbox worker in a child process,
    listserv/courier.py); ``handling_writers``: [server] handling_writers (None: the default)."""
    path = folder / "commonroom.toml"
    path.write_text("\n".join([
        "[server]", f'domain = "{DOMAIN}"', "smtp_port = 8025",
        'web_base_url = "https://lists.example.org"',
        f"smtp_process = {'true' if smtp_process else 'false'}",
        f"delivery_process = {'true' if delivery_process else 'false'}",
        *([f"handling_writers = {handling_writers}"] if handling_writers else []),
        "[database]", f'url = "{url}"',
        "[delivery]", f'smarthost = "127.0.0.1:{sink_port}"', f"connections = {connections}",
        'maildir = "var/outbox"', "dmarc_timeout = 1.0",
        *(f'{key} = "{value}"' for key, value in delivery.items()),
    ]) + "\n", encoding="utf-8")
    return path


# --- messages ------------------------------------------------------------------------------

_PARAGRAPH = ("We moved our staff e-learning to a cloud tool last spring and the council's "
              "digital team wrote up what worked, what did not, and what we would do again. "
              "The short version: start with the people who already run training, not the "
              "procurement rules; pilot with one service; publish the guidance openly.\n")


def body_text(size: int) -> str:
    text = ""
    while len(text) < size:
        text += _PARAGRAPH
    return text[:size].rstrip() + "\n"


def post_bytes(sender: str, subject: str, message_id: str, body_size: int = 3000,
               in_reply_to: str | None = None, body: str | None = None) -> bytes:
    lines = [f"From: Member <{sender}>", f"To: {POST_ADDRESS}", f"Subject: {subject}",
             "Date: Wed, 25 Nov 2026 10:00:00 +0000", f"Message-ID: <{message_id}>",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii"]
    if in_reply_to:
        lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
    text = "\r\n".join(lines) + "\r\n\r\n" + (body or body_text(body_size)).replace("\n", "\r\n")
    return text.encode()


# --- the delivery floor --------------------------------------------------------------------


def floor_message(i: int, body: bytes) -> bytes:
    """Member ``i``'s copy: its own List-Unsubscribe headers over ``body``."""
    mac = hmac.new(b"bench-secret", member_email(i).encode(), hashlib.sha256).hexdigest()[:24]
    personal = (f"List-Unsubscribe: <https://{DOMAIN}/lists/{LIST}/unsubscribe/{mac}>,\r\n"
                f" <mailto:{list_address(LIST, DOMAIN, Kind.LEAVE)}>\r\n"
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n").encode()
    return personal + body


def floor_body(size: int) -> bytes:
    """Headers and body such that ``floor_message`` is ``size`` bytes long."""
    head = (f"From: Member <{member_email(1)}>\r\nTo: {POST_ADDRESS}\r\n"
            "Subject: [bench] What we learnt moving training to the cloud\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    fill = size - len(floor_message(1, head)) - 2
    line = b"x" * 74 + b"\r\n"
    text = (line * (max(fill, 0) // len(line) + 1))[:max(fill, 0)]
    return head + text + b"\r\n"


@dataclass(frozen=True)
class FloorCopies:
    """The delivery floor's ``count`` copies (numbered from 1), each about ``size`` bytes.

    ``per_post`` 0 (fanout.py: one post): copy i goes to member i and has no Message-ID, as
    fanout's floor always sent. ``per_post`` M (ingest.py: posts x M members): copies come in
    posts of M, copy i to member (i-1) % M + 1 with its post's Message-ID, so a distinct sink
    counts each (Message-ID, recipient) once and does the work it does for Commonroom's copies."""

    count: int
    size: int
    per_post: int = 0
    run_id: str = "floor"

    def member(self, i: int) -> int:
        return (i - 1) % self.per_post + 1 if self.per_post else i

    def _message_id(self, i: int) -> bytes:
        if not self.per_post:
            return b""
        post = (i - 1) // self.per_post + 1
        return f"Message-ID: <floor-{self.run_id}-{post:07d}@council.example>\r\n".encode()

    @cached_property
    def _body(self) -> bytes:  # the shared part, so each copy is about ``size`` bytes
        return floor_body(self.size - len(self._message_id(1)))

    def envelope(self, i: int) -> tuple[str, str]:
        """(MAIL FROM, RCPT TO) of copy i: the member's VERP return path and address."""
        return verp(self.member(i)), member_email(self.member(i))

    def message(self, i: int) -> bytes:
        return floor_message(self.member(i), self._message_id(i) + self._body)


async def run_floor(sink: CountingSink, copies: FloorCopies, connections: int,
                    timeout: float) -> tuple[float, float, float]:
    """Send ``copies`` straight to ``sink`` with aiosmtplib over ``connections`` connections
    (each reused; MAIL, RCPT, DATA per copy, as Commonroom's transport does). Seconds until the
    sink has them all, and CPU seconds of this process and of the sink meanwhile."""
    import aiosmtplib

    numbers = itertools.count(1)
    copies.message(1)  # the shared body is built before the clock starts

    async def sender() -> None:
        smtp = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, timeout=30,
                               local_hostname="localhost", start_tls=False)
        await smtp.connect()
        await smtp.ehlo()
        while (i := next(numbers)) <= copies.count:
            sender_address, recipient = copies.envelope(i)
            await smtp.mail(sender_address)
            await smtp.rcpt(recipient)
            await smtp.data(copies.message(i))
        await smtp.quit()

    sink.expect(copies.count)
    cpu0, sink_cpu0 = cpu_seconds(), sink.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(connections)))
    if not await asyncio.to_thread(sink.wait, timeout):
        raise SystemExit(f"floor timed out: the sink got {sink.count.value} of {copies.count}")
    return (time.perf_counter() - started, cpu_seconds() - cpu0,
            sink.cpu_seconds() - sink_cpu0)


# --- the App in a background thread --------------------------------------------------------


class AppRunner:
    """``listserv.serve.App`` on a free loopback port, in a thread with its own loop."""

    def __init__(self, config_path: Path, url: str, *, synchronous: str = "FULL") -> None:
        self.config_path = config_path
        self.url = url
        self.synchronous = synchronous  # SQLite only: FULL (the server's) or NORMAL
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="app-loop",
                                        daemon=True)
        self.app: Any = None
        self.store: Any = None
        self._dns: asyncio.BaseTransport | None = None

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> AppRunner:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.app, self.store, self._dns = await start_app(self.config_path, self.url,
                                                          self.synchronous)

    @property
    def port(self) -> int:
        return int(self.app.port)

    def stop(self) -> None:
        try:
            if self.app is not None:
                self.call(self.app.stop())
        finally:
            if self._dns is not None:
                self.loop.call_soon_threadsafe(self._dns.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            if self.store is not None:
                self.store.dispose()


async def start_app(config_path: Path, url: str,
                    synchronous: str = "FULL") -> tuple[Any, Any, asyncio.BaseTransport]:
    """App (started, on free loopback ports), its Store, and the DNS double it asks."""
    from listserv.config import load, with_overrides
    from listserv.heap import freeze_startup_heap
    from listserv.serve import App
    from listserv.store import Store
    from tests.dnsdouble import DnsDouble

    loop = asyncio.get_running_loop()
    dns, _ = await loop.create_datagram_endpoint(lambda: DnsDouble({}),
                                                 local_addr=("127.0.0.1", 0))
    host, port = dns.get_extra_info("sockname")[:2]
    cfg = with_overrides(load(config_path, env={}),
                         delivery={"dmarc_nameservers": f"{host}:{port}"})
    store = Store(url, synchronous=synchronous)
    app = App(cfg, store, smtp_port=0, web_port=0)
    await app.start()
    freeze_startup_heap()  # as serve does once started (listserv/heap.py)
    return app, store, dns


class AppProcess:
    """The App (SMTP, delivery, scheduler, web) in a child process of its own."""

    def __init__(self, config_path: Path, url: str, name: str = "app") -> None:
        self._stop: MpEvent = _CTX.Event()
        parent, child = _CTX.Pipe()
        self._proc = _CTX.Process(target=_app_main, name=name, daemon=True,
                                  args=(child, str(config_path), url, self._stop))
        self._proc.start()
        if not parent.poll(120):
            self.stop()
            raise RuntimeError(f"{name} did not start")
        self.port: int = parent.recv()

    def cpu_seconds(self) -> float:
        assert self._proc.pid is not None
        return cpu_seconds(self._proc.pid)

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(60)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)


def _app_main(conn: Connection, config_path: str, url: str, stop: MpEvent) -> None:
    quiet_logging()

    async def run() -> None:
        app, store, dns = await start_app(Path(config_path), url)
        conn.send(app.port)
        try:
            await asyncio.to_thread(stop.wait)
        finally:
            await app.stop()
            dns.close()
            store.dispose()

    asyncio.run(run())


# --- ``commonroom serve`` as a real child process ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(url: str, folder: Path, timeout: float = 60.0
                ) -> tuple[subprocess.Popen[bytes], str, int]:
    """``commonroom serve`` on free loopback ports, delivering to a Maildir in ``folder``;
    returns once /healthz answers 200 and the SMTP port greets: (process, web base URL,
    SMTP port)."""
    import httpx

    web, smtp = free_port(), free_port()
    config = folder / "commonroom.toml"
    config.write_text("\n".join([
        "[server]", f'domain = "{DOMAIN}"', f"smtp_port = {smtp}", f"web_port = {web}",
        'web_base_url = "https://lists.example.org"', "[database]", f'url = "{url}"',
        "[delivery]", f'maildir = "{folder / "outbox"}"']) + "\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "listserv", "--config", str(config), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    base = f"http://127.0.0.1:{web}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
                    client.noop()
                return proc, base, smtp
        except (httpx.HTTPError, OSError, smtplib.SMTPException):
            pass
        time.sleep(0.2)
    proc.terminate()
    proc.wait(30)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s "
                       f"(exit code {proc.returncode})")


@dataclass
class Tickets:
    """Post numbers 1..posts, each handed out once to the client threads that share them."""

    posts: int
    _next: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self.posts:
                return None
            self._next += 1
            return self._next


def send_post(port: int, sender: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.sendmail(sender, [POST_ADDRESS], raw)


def wait_or_progress(sink: CountingSink, timeout: float, label: str,
                     report: Callable[[str], None] = print) -> bool:
    """Wait for the sink's target, printing progress every 10 s; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if sink.wait(min(10.0, left)):
            return True
        report(f"  {label}: {sink.count.value} of {sink.target.value} received so far")
