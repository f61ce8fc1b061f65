"""Idle CPU of a whole dev stack with no traffic (a script, not a test).

    .venv/bin/python bench/idle_bench.py                     # own stack on free ports, 60 s window
    .venv/bin/python bench/idle_bench.py --seconds 120 --threads
    .venv/bin/python bench/idle_bench.py --pids .leadpipe/pids   # a running `leadpipe dev up`

Starts what ``leadpipe dev up`` starts (one Kafka node, Redis, PostgreSQL for the console, and
every service: ingest, scoring, nurture, notifier, exporter, canary on its 30 s timer, console)
on free ports, waits until every service is ready, lets start-up settle (``--settle``: group
joins, JIT warm-up, the first canary round trip), then measures each process's CPU seconds
(utime + stime of its whole tree, from /proc) over ``--seconds`` and prints % of one core per
process and in total. Target: under 3 % of one core in total.

The machine may be shared: CPU time is what this stack's own processes used, so other
people's load does not add to it, but it can stretch what they do (cache misses, steal).
``--threads`` also lists the broker's busiest JVM threads over the window (what burns it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import proc_cpu  # noqa: E402

TARGET_PCT = 3.0


def read_pids(path: Path) -> dict[str, int]:
    """The ``pids`` file a ``leadpipe dev up`` writes into its state dir: ``name pid`` per line."""
    out: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise SystemExit(f"{path}:{n}: expected 'name pid', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out


def measure(pids: dict[str, int], seconds: float, broker: str | None, top_threads: int) -> dict[str, Any]:
    before = proc_cpu.snapshot(pids)
    th_before = proc_cpu.threads(pids[broker]) if broker and top_threads else {}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    after = proc_cpu.snapshot(pids)
    th_after = proc_cpu.threads(pids[broker]) if broker and top_threads else {}
    used = proc_cpu.delta(before, after)
    per = {name: round(100 * cpu / wall, 2) for name, cpu in used.items()}
    out: dict[str, Any] = {
        "seconds": round(wall, 1),
        "cpu_s": {k: round(v, 3) for k, v in used.items()},
        "pct_of_one_core": per,
        "total_pct": round(sum(per.values()), 2),
    }
    if th_after:
        ths = {k: th_after[k] - th_before.get(k, 0.0) for k in th_after}
        top = sorted(ths.items(), key=lambda kv: -kv[1])[:top_threads]
        out["broker_threads_pct"] = {k: round(100 * v / wall, 2) for k, v in top if v > 0}
    return out


def report(result: dict[str, Any]) -> None:
    print(
        f"\nIdle stack, no traffic, {result['seconds']:.0f} s window after {result['settle_s']:.0f} s settling "
        f"({result['cores']} cores, load avg {result['loadavg']}: shared machine, expect noise)"
    )
    print(f"  {'process':<12} {'CPU s':>8} {'% of one core':>14}")
    for name, pct in sorted(result["pct_of_one_core"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<12} {result['cpu_s'][name]:>8.2f} {pct:>14.2f}")
    total = result["total_pct"]
    print(f"  {'total':<12} {sum(result['cpu_s'].values()):>8.2f} {total:>14.2f}")
    print(f"Target: under {TARGET_PCT:g} % of one core in total -> {'met' if total < TARGET_PCT else 'NOT met'}")
    if result.get("broker_threads_pct"):
        print("Broker's busiest threads (% of one core):")
        for name, pct in result["broker_threads_pct"].items():
            print(f"  {name:<24} {pct:>6.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window [60]")
    p.add_argument("--settle", type=float, default=20.0, help="seconds to wait after every service is ready [20]")
    p.add_argument("--pids", type=Path, help="measure a running stack: its state dir's pids file")
    p.add_argument("--threads", type=int, nargs="?", const=12, default=0, help="list the broker's N busiest threads")
    p.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for every service"
    )
    p.add_argument("--json", type=Path, default=REPO / "bench/results/idle.json")
    args = p.parse_args(argv)
    env = {}
    for item in args.env:
        name, eq, value = item.partition("=")
        if not eq or not name:
            p.error(f"--env expects NAME=VALUE, got {item!r}")
        env[name] = value
    if args.seconds <= 0 or args.settle < 0:
        p.error("--seconds must be > 0 and --settle >= 0")

    from leadpipe.devstack.stack import Stack

    stack: Stack | None = None
    try:
        if args.pids:
            pids = read_pids(args.pids)
        else:
            work = Path(tempfile.mkdtemp(prefix="idle-bench-"))
            print(f"state and logs: {work}", flush=True)
            stack = Stack(work / "stack", ports="free", env=env)
            stack.start()
            stack.wait_ready(timeout_s=180.0)
            pids = {proc.name: proc.pid for proc in stack.all_processes()}
        print(f"measuring {', '.join(pids)}: {args.settle:g} s settling, then {args.seconds:g} s ...", flush=True)
        time.sleep(args.settle)
        broker = next((n for n in pids if n == "broker" or n.startswith("kafka")), None)
        result = measure(pids, args.seconds, broker, args.threads)
    finally:
        if stack is not None:
            stack.stop()
    result |= {
        "settle_s": args.settle,
        "cores": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/idle_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0 if result["total_pct"] < TARGET_PCT else 1


if __name__ == "__main__":
    raise SystemExit(main())
