"""``leadpipe dev up``: run the embedded stack."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="the embedded development stack")
    dsub = dev.add_subparsers(dest="dev_command", required=True)
    up = dsub.add_parser("up", help="start broker, Redis and every service; Ctrl-C stops all")
    up.add_argument("--state-dir", type=Path, default=Path(".leadpipe"))
    up.add_argument("--ready-file", type=Path, default=None, help="write the summary here once up")
    up.add_argument(
        "--brokers", type=int, default=1, choices=(1, 3),
        help="Kafka nodes: 1, or a local 3-node cluster (replication factor 3, min.insync.replicas 2)",
    )  # fmt: skip
    up.set_defaults(func=_up)


def _up(args: argparse.Namespace) -> int:
    from leadpipe.devstack.up import run

    return run(args.state_dir, ready_file=args.ready_file, brokers=args.brokers)
