"""Profiles a process's CPU, not its wall time (a measuring hook, not part of the services): with
``CPUPROF_DIR`` set and this directory on ``PYTHONPATH``, every Python process started from that
environment whose command line contains ``CPUPROF_MATCH`` (default ``services.``: each service
of a stack, not the bench) waits for a signal. ``SIGRTMIN+3`` starts a ``cProfile`` timed by the
main thread's own CPU clock (``time.thread_time``); ``SIGRTMIN+4`` stops it and writes
``<CPUPROF_DIR>/<pid>.prof`` (pstats) and ``<pid>.json`` (command line, the main thread's and the
process's CPU seconds and the wall seconds of the window, and the profiler's own cost per call,
calibrated in the process right after).

Why a CPU clock: py-spy and cProfile's default timer count a process preempted by the others on a
busy 2-core machine as busy wherever it stopped; a thread's CPU clock does not advance then. What
it adds: its own cost per call (reading that clock is a system call), so code making many small
Python calls (protocol encoders, recursive walks) reads larger than code spending its time in C.
``report.py`` takes the calibrated cost off each function; what remains is still above the
unprofiled CPU (about 1.2 to 1.8 times at 20 forms/s), so read the shares as approximate.
``bench/cpu_hook/run.py`` drives it during a pipeline bench sweep; ``report.py`` sums the
profile by layer.
"""

from __future__ import annotations

import os
import sys

OUT = os.environ.get("CPUPROF_DIR")
MATCH = os.environ.get("CPUPROF_MATCH", "services.")

if OUT and any(MATCH in arg for arg in getattr(sys, "orig_argv", sys.argv)):
    import cProfile
    import json
    import pstats
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
            "argv": sys.argv[:3],  # as bench/gc_hook writes it (its report names processes by it)
            "main_thread_cpu_s": time.thread_time() - _start["thread"],
            "process_cpu_s": time.process_time() - _start["process"],
            "wall_s": time.monotonic() - _start["wall"],
            **_calibrate(),
        }
        with open(path + ".json", "w") as f:
            json.dump(doc, f)

    def _empty() -> None:
        pass

    def _calls(n: int) -> None:
        for _ in range(n):
            _empty()

    def _calibrate(n: int = 100_000) -> dict[str, float]:
        """What the profiler adds per call, measured here and now (the CPU clock is a system
        call, about a microsecond a call): the callee's own time gains ``callee_bias_s`` per
        call, the caller's ``caller_bias_s`` (``report.py`` takes both off)."""
        start = time.thread_time()
        _calls(n)
        plain = time.thread_time() - start
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        _calls(n)
        profile.disable()
        own = {name: row[2] for (_, _, name), row in pstats.Stats(profile).stats.items()}  # type: ignore[attr-defined]
        return {"callee_bias_s": own["_empty"] / n, "caller_bias_s": max(0.0, own["_calls"] - plain) / n}

    signal.signal(signal.SIGRTMIN + 3, _begin)
    signal.signal(signal.SIGRTMIN + 4, _end)
