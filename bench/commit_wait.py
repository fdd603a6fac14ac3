"""The handling writer's COMMITs on PostgreSQL, asynchronous ones apart from synchronous ones.

    PYTHONPATH=. python bench/commit_wait.py --posts 2000 --clients 8 --delivery-process \\
        --db postgresql://postgres@127.0.0.1:5432/test --no-floor

Runs ``bench/ingest.py`` as given and times, in the App's handling writer (``group-commit-0``),
each COMMIT from the driver's call to its return: those of groups that set
``synchronous_commit = off`` (``listserv/async_commit.py``: only the inbound pipeline's units)
apart from the others (a group holding one of the door's units). Both kinds run in the same
run, so at the same load: the difference is what waiting for the WAL flush costs the writer.
Also prints how many posts the writer handled per transaction. Last line:
``commit_wait async_n=A async_p50_ms=… sync_n=S sync_p50_ms=… posts_per_transaction=P``.
"""

from __future__ import annotations

import atexit
import runpy
import sys
import threading
import time
from typing import Any

from sqlalchemy import Engine, event

import listserv.store as store_mod

WRITER = "group-commit-0"
_local = threading.local()
_times: dict[bool, list[float]] = {True: [], False: []}
_handled: list[int] = []  # posts handled (inbound rows deleted) per writer transaction


def _watch(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name != WRITER:
            return
        if "set_config('synchronous_commit'" in statement:
            _local.lazy = True
        elif statement.startswith("DELETE FROM inbound"):
            _local.handled = getattr(_local, "handled", 0) + 1

    dialect: Any = engine.dialect
    real_commit = dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        if threading.current_thread().name != WRITER:
            real_commit(dbapi_connection)
            return
        started = time.perf_counter()
        try:
            real_commit(dbapi_connection)
        finally:
            _times[getattr(_local, "lazy", False)].append(time.perf_counter() - started)
            _handled.append(getattr(_local, "handled", 0))
            _local.lazy, _local.handled = False, 0

    dialect.do_commit = do_commit


def _p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] * 1000 if values else 0.0


def _report() -> None:
    for lazy, label in ((True, "asynchronous"), (False, "synchronous")):
        values = _times[lazy]
        mean = sum(values) / len(values) * 1000 if values else 0.0
        print(f"{label} commits of the handling writer: {len(values)}, mean {mean:.3f} ms, "
              f"p50 {_p50(values):.3f} ms")
    posts = sum(_handled) / max(sum(1 for n in _handled if n), 1)
    print(f"commit_wait async_n={len(_times[True])} async_p50_ms={_p50(_times[True]):.3f} "
          f"sync_n={len(_times[False])} sync_p50_ms={_p50(_times[False]):.3f} "
          f"posts_per_transaction={posts:.2f}")


def main() -> None:
    real_create = store_mod.Store._create_engine

    def create(url: str, synchronous: str, write_lock: Any) -> Engine:
        engine = real_create(url, synchronous, write_lock)
        if engine.dialect.name == "postgresql":
            _watch(engine)
        return engine

    store_mod.Store._create_engine = staticmethod(create)  # type: ignore[method-assign]
    atexit.register(_report)
    sys.argv = ["bench/ingest.py", *sys.argv[1:]]
    runpy.run_path("bench/ingest.py", run_name="__main__")


if __name__ == "__main__":
    main()
