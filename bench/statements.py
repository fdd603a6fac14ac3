"""Statements per handled post: ``bench/ingest.py`` with every statement counted and timed.

    PYTHONPATH=. python bench/statements.py --posts 2000 --clients 8 \\
        --db postgresql://postgres@127.0.0.1:5432/test --no-floor

Runs ingest.py as given, then prints, per thread of the App (``group-commit-0`` is the writer
that handles posts, ``group-commit-urgent`` the door's urgent inserts, ``asyncio_N`` delivery),
each statement's count per post, its mean time and its time per post, from the client's side
(so a statement's time includes waiting for the GIL after the server answered). COMMIT,
ROLLBACK and ping are counted too, and each psycopg pipeline's sync as one round trip; a
statement marked "[pipelined]" went in one and costs no round trip of its own. The counting
itself costs CPU: compare its rates only with its own.
"""

from __future__ import annotations

import atexit
import re
import runpy
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import psycopg
from sqlalchemy import Engine, event

import listserv.store as store_mod
from listserv import write_behind

_stats: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
_lock = threading.Lock()
_local = threading.local()


def _thread() -> str:
    name = threading.current_thread().name
    return re.sub(r"\d+$", "N", name) if name.startswith(("asyncio_", "ThreadPool")) else name


def _add(what: str, seconds: float) -> None:
    with _lock:
        entry = _stats[(_thread(), what)]
        entry[0] += 1
        entry[1] += seconds


def _timed(name: str, real: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - started)
    return run


def _count(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        _local.started = time.perf_counter()
        _local.pipelined = bool(cursor.connection.pgconn.pipeline_status) \
            if hasattr(cursor.connection, "pgconn") else False

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any,
               executemany: bool) -> None:
        text = re.sub(r"\(%\(.*", "(…", " ".join(statement.split()))
        text = re.sub(r"sa_savepoint_\d+", "sp", text)[:90]
        text += (" [many]" if executemany else "") + (" [pipelined]" if _local.pipelined else "")
        _add(text, time.perf_counter() - _local.started)

    real_execute = getattr(write_behind.execute, "counted", write_behind.execute)

    def raw(cursor: Any, statement: str, params: Any, many: bool) -> None:
        try:  # write_behind's own writes skip after_cursor_execute: counted here
            real_execute(cursor, statement, params, many)
        finally:
            _after(None, cursor, statement, params, None, many)

    raw.counted = real_execute  # type: ignore[attr-defined]  # one count, however many engines
    write_behind.execute = raw  # type: ignore[assignment]

    dialect: Any = engine.dialect
    for name in ("do_commit", "do_rollback", "do_ping"):
        setattr(dialect, name, _timed(name.removeprefix("do_").upper(), getattr(dialect, name)))


def _report(posts: int) -> None:
    by_thread: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for (thread, what), (count, seconds) in _stats.items():
        by_thread[thread].append((seconds, count, what))
    for thread, rows in sorted(by_thread.items()):
        count = sum(r[1] for r in rows)
        seconds = sum(r[0] for r in rows)
        print(f"\n{thread}: {count / posts:.1f} statements a post, {seconds / posts * 1000:.2f} ms"
              " a post (client side)")
        for seconds, count, what in sorted(rows, reverse=True)[:30]:
            print(f"  {count / posts:5.2f}/post {seconds / count * 1000:6.3f} ms "
                  f"{seconds / posts * 1000:6.3f} ms/post  {what}")


def main() -> None:
    real_create = store_mod.Store._create_engine

    def create(url: str, synchronous: str, write_lock: Any) -> Engine:
        engine = real_create(url, synchronous, write_lock)
        _count(engine)
        return engine

    store_mod.Store._create_engine = staticmethod(create)  # type: ignore[method-assign]
    psycopg.Pipeline.__exit__ = _timed(  # type: ignore[method-assign]
        "PIPELINE SYNC (one round trip)", psycopg.Pipeline.__exit__)
    posts = int(sys.argv[sys.argv.index("--posts") + 1]) if "--posts" in sys.argv else 2000
    atexit.register(_report, posts)
    sys.argv = ["bench/ingest.py", *sys.argv[1:]]
    runpy.run_path("bench/ingest.py", run_name="__main__")


if __name__ == "__main__":
    main()
