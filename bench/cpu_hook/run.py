"""Where each service's CPU goes under load, by layer: runs ``bench/pipeline_bench.py`` (sweep
only, one rate) with ``bench/cpu_hook`` on the services' ``PYTHONPATH``, profiles every service's
main thread by its CPU clock for ``--seconds`` in the middle of the rate's phase, then prints
``report.py``'s table (and its ``--ms-per-lead`` scaling when given an unprofiled run's JSON)::

    .venv/bin/python bench/cpu_hook/run.py --rate 100 --seconds 20 --out /tmp/cpuprof \\
        [--ms-per-lead unprofiled.json]

The profiled run's own CPU numbers are inflated by the profiler (about twice at 20 forms/s):
take CPU per lead from an unprofiled run, and only the shares from this one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.cpu_hook.report import report, table, with_ms

HOOK = Path(__file__).resolve().parent
ROOT = HOOK.parents[1]


def profiled_pids(out: Path) -> list[int]:
    """The running processes the hook armed: started with ``CPUPROF_DIR=out`` and a service's
    command line."""
    marker = f"CPUPROF_DIR={out}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and any(arg.startswith(b"services.") for arg in cmdline):
            found.append(int(entry.name))
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.kill(pid, signum)


@contextlib.contextmanager
def sweep_phase(
    rate: int, seconds: float, out: Path, *, env: dict[str, str] | None = None, result: str = "bench.result"
) -> Iterator[subprocess.Popen[str]]:
    """Runs ``bench/pipeline_bench.py --sweep-only`` holding ``rate`` forms/s for ``seconds``
    (result JSON ``out/result``, its output echoed) and yields the bench process once that phase
    has begun. A bench that ends before it is a ``SystemExit``; one still running on the way out
    is stopped."""
    argv = [sys.executable, str(ROOT / "bench" / "pipeline_bench.py"), "--sweep-only",
            "--sweep-rates", str(rate), "--check-rate", str(rate),
            "--check-seconds", str(int(seconds)), "--raw-n", "500", "--json", str(out / result),
            "--sweep-plot", str(out / "sweep.png")]  # fmt: skip
    bench = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    started = threading.Event()

    def follow() -> None:
        assert bench.stdout is not None
        for line in bench.stdout:
            print(line, end="", flush=True)
            if f"(e) {rate} forms/s" in line:
                started.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        while not started.wait(1):
            if bench.poll() is not None:
                raise SystemExit(f"the bench ended ({bench.returncode}) before its {rate} forms/s phase")
        yield bench
    finally:
        if bench.poll() is None:
            bench.terminate()
            bench.wait(60)
        reader.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=100, help="forms/s of the profiled sweep phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to profile")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds into the phase before profiling")
    parser.add_argument("--out", type=Path, required=True, help="directory for the profiles (emptied first)")
    parser.add_argument("--ms-per-lead", type=Path, help="an unprofiled pipeline_bench.py --json file")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.prof"), *out.glob("*.json")]:
        old.unlink()
    env = os.environ | {
        "CPUPROF_DIR": str(out),
        "PYTHONPATH": os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH", "")) if p),
    }
    with sweep_phase(args.rate, args.settle + args.seconds + 5, out, env=env) as bench:
        time.sleep(args.settle)
        pids = profiled_pids(out)
        if not pids:
            raise SystemExit("no service process carries the hook (is bench/cpu_hook on their PYTHONPATH?)")
        signal_all(pids, signal.SIGRTMIN + 3)
        time.sleep(args.seconds)
        signal_all(pids, signal.SIGRTMIN + 4)
        bench.wait()
    rows = report(out)
    if args.ms_per_lead:
        rows = with_ms(rows, args.ms_per_lead, str(args.rate))
    print(table(rows))


if __name__ == "__main__":
    main()
