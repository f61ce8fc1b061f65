"""Looks at the stack's processes from outside while ``bench/pipeline_bench.py --sweep-only`` holds
one rate (a measuring aid for this round, not a benchmark of its own)::

    .venv/bin/python bench/results/issue13-round16/perf_run.py RATE SECONDS OUT [trace|perf]

Five seconds into the rate's phase, for SECONDS: each process's user and system CPU per lead and
its voluntary and involuntary context switches per lead (from /proc), and
- ``trace``: ``perf trace -s`` of each service (system calls, counted);
- ``perf``: ``perf record -e cpu-clock -g`` of the three workers (``perf report -i OUT/perf-<name>.data
  --sort dso`` splits their CPU between the interpreter, the kernel and each native library).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from bench.cpu_hook.run import sweep_phase  # noqa: E402


def pids_of_stack() -> dict[str, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in argv:
            if arg.startswith(b"services.") and b"python" in argv[0]:
                found[arg.decode().split(".")[1]] = int(entry.name)
        if b"kafka.Kafka" in b" ".join(argv):
            found["broker"] = int(entry.name)
        if argv[0].endswith(b"redis-server"):
            found["redis"] = int(entry.name)
    return found


def snapshot(pid: int) -> tuple[int, int, int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    voluntary = involuntary = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                voluntary += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                involuntary += int(line.split()[1])
    return int(fields[11]), int(fields[12]), voluntary, involuntary


def main() -> None:
    rate, seconds, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else ""
    out.mkdir(parents=True, exist_ok=True)
    with sweep_phase(rate, seconds + 15, out, result="bench.json") as bench:
        time.sleep(5)
        pids = pids_of_stack()
        services = {n: p for n, p in pids.items() if n not in ("broker", "redis")}
        if mode == "perf":
            tools = [["perf", "record", "-e", "cpu-clock", "-F", "499", "-g", "-o", str(out / f"perf-{n}.data"),
                      "-p", str(p), "--", "sleep", str(seconds)] for n, p in services.items() if n != "ingest"]  # fmt: skip
        elif mode == "trace":
            tools = [["perf", "trace", "-s", "-p", str(p), "-o", str(out / f"trace-{n}.txt"), "--", "sleep",
                      str(seconds)] for n, p in services.items()]  # fmt: skip
        else:
            tools = []
        procs = [subprocess.Popen(t, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for t in tools]
        before = {n: snapshot(p) for n, p in pids.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        after = {n: snapshot(p) for n, p in pids.items()}
        leads = rate * (time.monotonic() - t0)
        hz = os.sysconf("SC_CLK_TCK")
        print(f"{'process':10} {'user ms/lead':>12} {'sys ms/lead':>12} {'vol cs/lead':>12} {'invol cs/lead':>13}")
        for n in pids:
            d = [b - a for a, b in zip(before[n], after[n], strict=True)]
            print(f"{n:10} {1000 * d[0] / hz / leads:12.2f} {1000 * d[1] / hz / leads:12.2f} "
                  f"{d[2] / leads:12.2f} {d[3] / leads:13.2f}")  # fmt: skip
        for p in procs:
            p.wait()
        bench.wait()


if __name__ == "__main__":
    main()
