"""How a long-running service's Python heap is garbage-collected (``GC_YOUNG_THRESHOLD``).

CPython's cycle collector runs a young collection every 700 net allocations of container
objects, and now and then a full one that walks every tracked object in the process. A service
holds about 100,000 long-lived objects (modules, classes, pydantic schemas, Faust's app, the
clients) once it has started, before its first event; each full collection walked them all
again, 100-130 ms each in nurture under load. ``settle_once``, once the service has started
(a worker: joined its group; an HTTP service: listening), and ``settle_heap``:

- collect once and freeze what exists (``gc.freeze``): those objects are never walked again;
- raise the young threshold (700 -> ``GC_YOUNG_THRESHOLD``, 10,000): a record's short-lived
  objects are mostly freed by reference counting before a collection would look at them.

Measured in bench/results/issue13-gc (README there). The price is memory: cyclic garbage lives
up to 10,000 allocations longer, and a frozen object that later ends up in a reference cycle is
never reclaimed (reference counting still frees the rest). What is frozen is what the service
built to run, kept for its lifetime anyway. ``GC_YOUNG_THRESHOLD=0`` keeps CPython's defaults and
freezes nothing.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

#: Older generations are collected every 10 young (and 10 middle) collections, as CPython does.
OLDER_EVERY = 10


def settle_heap(young_threshold: int) -> None:
    """Freezes the objects built so far and sets the young threshold; ``0`` changes nothing."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, OLDER_EVERY, OLDER_EVERY)


async def settle_once(started: Callable[[], bool], young_threshold: int, *, poll_s: float = 0.2,
                      give_up_s: float = 60.0) -> None:  # fmt: skip
    """Waits until ``started()`` (what a service imports and builds lazily while it starts is
    then loaded), or ``give_up_s`` at most, then ``settle_heap``."""
    if young_threshold <= 0:
        return
    deadline = time.monotonic() + give_up_s
    while not started() and time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
    settle_heap(young_threshold)
