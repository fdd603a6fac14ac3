"""The start-up heap is frozen once a long-running process has started (listserv/heap.py), so a
full collection no longer stops the event loop for the whole heap's walk."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from listserv import heap, serve


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process goes on collecting as before


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_start_up_heap_is_frozen_and_what_comes_later_is_collected(unfrozen: None) -> None:
    dead = Cycle()
    before = weakref.ref(dead)
    del dead
    frozen = heap.freeze_startup_heap()
    assert frozen > 1000 and gc.get_freeze_count() == frozen
    assert before() is None, "garbage made before the freeze was collected, not kept for good"
    later = Cycle()
    after = weakref.ref(later)
    del later
    gc.collect()
    assert after() is None
    assert gc.get_freeze_count() == frozen


def test_serve_freezes_the_heap_once_started(unfrozen: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def start(_self: Any) -> None:
        calls.append("start")

    async def stop(_self: Any) -> None:
        calls.append("stop")

    monkeypatch.setattr(serve.App, "start", start)
    monkeypatch.setattr(serve.App, "stop", stop)
    monkeypatch.setattr(heap, "freeze_startup_heap", lambda: calls.append("freeze") or 0)
    app = serve.App.__new__(serve.App)
    app.store = type("S", (), {"dispose": lambda _self: None})()

    async def run() -> None:
        task = asyncio.create_task(app.run_forever())
        for _ in range(100):  # run_forever waits for a signal once started
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert calls == ["start", "freeze", "stop"]
