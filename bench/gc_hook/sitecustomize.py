"""Counts the time each process spends in CPython's cycle collector (a measuring hook, not part of
the services): with ``GCSTAT_DIR`` set and this directory on ``PYTHONPATH``, every Python process
started from that environment (the bench and every service of its stack) writes
``<GCSTAT_DIR>/<pid>.json`` every 2 s: collections per generation, seconds spent in them (from
``gc.callbacks``), and the process's command line; and once more at exit. Used for bench/results/issue13-gc::

    mkdir -p /tmp/gc && GCSTAT_DIR=/tmp/gc PYTHONPATH=bench/gc_hook \\
        .venv/bin/python bench/pipeline_bench.py --sweep-only --sweep-rates 20,100 ...
    .venv/bin/python bench/gc_hook/report.py /tmp/gc
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import threading
import time

OUT = os.environ.get("GCSTAT_DIR")

if OUT:
    _stats: dict[str, list[float]] = {"n": [0, 0, 0], "t": [0.0, 0.0, 0.0]}
    _started: dict[int, float] = {}

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        generation = info["generation"]
        if phase == "start":
            _started[generation] = time.perf_counter()
            return
        _stats["n"][generation] += 1
        _stats["t"][generation] += time.perf_counter() - _started.pop(generation, time.perf_counter())

    def _write() -> None:
        path = os.path.join(OUT, f"{os.getpid()}.json")
        doc = {"argv": sys.argv[:3], "collections": _stats["n"], "seconds": _stats["t"]}
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f)
        os.replace(path + ".tmp", path)

    def _every_2s() -> None:
        while True:
            time.sleep(2)
            _write()

    gc.callbacks.append(_on_gc)
    atexit.register(_write)  # a process stopped with SIGTERM or SIGKILL keeps its last 2 s write
    threading.Thread(target=_every_2s, name="gc-stats", daemon=True).start()
