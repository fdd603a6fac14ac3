"""The start-up heap, kept out of the cyclic garbage collector's way.

A long-running process (``serve``, its SMTP process) imports SQLAlchemy, the models, aiosmtpd,
the web framework and its own modules before it serves: ~160,000 objects that live as long as
the process. Python's full (generation 2) collection walks every tracked object while holding
the GIL, so each one stopped the event loop for 60-300 ms on a loaded 2-core machine, and a
member's 250 with it (bench/README.md, "The flood's member p99 on PostgreSQL"). Frozen, those
objects are never walked again; what the process makes later is collected as before.

Invariants:
- Called once a process has started (its imports done, its engine and caches built), never in
  a process that is not long-running (tests start ``App`` many times in one process).
- Garbage made before the call is collected first, so no dead cycle is kept for good.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect, then move every object the collector tracks to its permanent generation (not
    walked by later collections); how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
