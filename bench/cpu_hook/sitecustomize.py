"""Profiles a process's CPU, not its wall time (a measuring hook, not part of the services): with
``CPUPROF_DIR`` set and this directory on ``PYTHONPATH``, every Python process started from that
environment whose command line contains ``CPUPROF_MATCH`` (default ``services.``: each service
of a stack, not the bench) waits for a signal. ``SIGRTMIN+3`` starts a ``cProfile`` timed by the
main thread's own CPU clock (``time.thread_time``); ``SIGRTMIN+4`` stops it and writes
``<CPUPROF_DIR>/<pid>.prof`` (pstats) and ``<pid>.json`` (command line, the main thread's and the
process's CPU seconds and the wall seconds of the window).

Why a CPU clock: py-spy and cProfile's default timer count a process preempted by the others on a
busy 2-core machine as busy wherever it stopped; a thread's CPU clock does not advance then. What
it still distorts: cProfile's own cost per call, so code making many small Python calls (protocol
encoders, recursive walks) reads larger than code spending its time in C. ``bench/cpu_hook/run.py``
drives it during a pipeline bench sweep; ``report.py`` sums the profile by layer.
"""

from __future__ import annotations

import os
import sys

OUT = os.environ.get("CPUPROF_DIR")
MATCH = os.environ.get("CPUPROF_MATCH", "services.")

if OUT and any(MATCH in arg for arg in getattr(sys, "orig_argv", sys.argv)):
    import cProfile
    import json
    import signal
    import time

    _profile = cProfile.Profile(time.thread_time)
    _start: dict[str, float] = {}

    def _begin(*_: object) -> None:
        _start.update(thread=time.thread_time(), process=time.process_time(), wall=time.monotonic())
        _profile.enable()

    def _end(*_: object) -> None:
        _profile.disable()
        if not _start:
            return
        path = os.path.join(OUT, str(os.getpid()))  # type: ignore[arg-type]
        _profile.dump_stats(path + ".prof")
        doc = {
            "argv": list(getattr(sys, "orig_argv", sys.argv)),
            "main_thread_cpu_s": time.thread_time() - _start["thread"],
            "process_cpu_s": time.process_time() - _start["process"],
            "wall_s": time.monotonic() - _start["wall"],
        }
        with open(path + ".json", "w") as f:
            json.dump(doc, f)

    signal.signal(signal.SIGRTMIN + 3, _begin)
    signal.signal(signal.SIGRTMIN + 4, _end)
