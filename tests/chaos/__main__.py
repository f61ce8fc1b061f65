"""``python -m tests.chaos``: the chaos run outside pytest, and the audit on its own.

    python -m tests.chaos run                       # the short (CI) plan
    python -m tests.chaos run --rounds 5 --seed 7   # 5 rounds in a random order, Redis wiped
    python -m tests.chaos run --brokers 3           # the cluster plan on three brokers
    python -m tests.chaos audit --bootstrap 127.0.0.1:9092 --outbox .leadpipe/outbox \\
        --accepted accepted.jsonl                   # audit a running stack

Exit status 0 when the audit passes, 1 when it does not (the problems are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.audit import Accepted, audit, read_observed
from tests.chaos.scenario import cluster_plan, long_plan, run, short_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="start a stack, load it, make faults, audit")
    r.add_argument("--rounds", type=int, default=0, help="rounds of faults in a random order (0: the short plan)")
    r.add_argument("--seed", type=int, default=None, help="seed for the fault order and the load")
    r.add_argument(
        "--brokers", type=int, default=1, choices=(1, 3), help="3: the cluster plan (or rounds) on 3 brokers"
    )
    r.add_argument("--rate", type=float, default=8.0, help="posts per second to ingest")
    r.add_argument("--between", type=int, default=15, help="captures accepted between two faults")
    r.add_argument(
        "--keep-redis",
        action="store_true",
        help="restart Redis with its data (default: wipe the services' database; the key store is kept)",
    )
    r.add_argument("--settle", type=float, default=None, help="seconds the pipeline gets to catch up")
    r.add_argument("--state-dir", type=Path, default=None, help="where logs and the audit dump go")
    a = sub.add_parser("audit", help="audit a running stack's topics and outbox")
    a.add_argument("--bootstrap", required=True)
    a.add_argument("--outbox", type=Path, required=True, help="the notifier's NOTIFIER_OUTBOX_DIR")
    a.add_argument("--accepted", type=Path, required=True, help="accepted.jsonl written by a chaos run")
    args = parser.parse_args(argv)

    if args.command == "audit":
        seen = asyncio.run(read_observed(args.bootstrap, args.outbox))
        report = audit(Accepted.load(args.accepted), seen, now=datetime.now(UTC))
        print(report.summary(limit=20))
        return 0 if report.ok else 1

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    if args.rounds:
        plan = long_plan(args.rounds, seed, wipe=not args.keep_redis)
    else:
        plan = cluster_plan() if args.brokers == 3 else short_plan()
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="leadpipe-chaos-"))
    settle = args.settle if args.settle is not None else 90.0 + 30.0 * args.rounds

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    say(f"state dir {state}; seed {seed}; plan: " + ", ".join(map(str, plan)))
    outcome = run(
        state,
        plan,
        rate_per_s=args.rate,
        between=args.between,
        seed=seed,
        settle_s=settle,
        say=say,
        brokers=args.brokers,
    )
    say("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in outcome.timings.items()))
    return 0 if outcome.report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
