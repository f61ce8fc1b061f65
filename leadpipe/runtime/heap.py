"""How a long-running service's Python heap is garbage-collected (``GC_YOUNG_THRESHOLD``).

CPython's cycle collector runs a young collection every 700 net allocations of container
objects, and now and then a full one that walks every tracked object in the process. A service
imports and builds about 100,000 long-lived objects (modules, classes, pydantic schemas, Faust's
app) before it handles its first event; each full collection walked them all again, 80-120 ms
each in nurture under load. ``settle_heap``, called once the service is built and before it
serves:

- collects once and freezes what exists (``gc.freeze``): those objects are never walked again;
- raises the young threshold (700 -> ``GC_YOUNG_THRESHOLD``, 10,000): a record's short-lived
  objects are mostly freed by reference counting before a collection would look at them.

bench/results/issue13-gc: the five services' collections 4.6 -> 0.7 s of CPU in a bench run, the
whole stack's CPU per lead about 6 % lower at 100 forms/s. The price is memory: cyclic garbage
lives up to 10,000 allocations longer (kilobytes). ``GC_YOUNG_THRESHOLD=0`` keeps CPython's
defaults and freezes nothing.
"""

from __future__ import annotations

import gc

#: Older generations are collected every 10 young (and 10 middle) collections, as CPython does.
OLDER_EVERY = 10


def settle_heap(young_threshold: int) -> None:
    """Freezes the objects built so far and sets the young threshold; ``0`` changes nothing."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, OLDER_EVERY, OLDER_EVERY)
