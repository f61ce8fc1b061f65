"""``leadpipe topics apply|list``: provision topics from the registry."""

from __future__ import annotations

import argparse
import asyncio
import os


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("topics", help="topics of the registry")
    s = p.add_subparsers(dest="topics_command", required=True)
    apply = s.add_parser("apply", help="create missing topics (idempotent)")
    apply.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        required=not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
    )
    apply.add_argument("--partitions", type=int, default=int(os.environ.get("KAFKA_PARTITIONS", "6")))
    apply.add_argument("--replication-factor", type=int, default=int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1")))
    apply.set_defaults(func=_apply)
    s.add_parser("list", help="print the registry").set_defaults(func=_list)


def _apply(args: argparse.Namespace) -> int:
    from leadpipe.runtime.kafka import ensure_topics
    from schemas.topics import registry

    created = asyncio.run(
        ensure_topics(args.bootstrap, registry(args.partitions).values(), replication_factor=args.replication_factor)
    )
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} created, {len(registry(args.partitions)) - len(created)} already there")
    return 0


def _list(_: argparse.Namespace) -> int:
    from schemas.topics import TOPICS

    for spec in TOPICS.values():
        role = (
            f"dead letters of {spec.dead_letter_of}"
            if spec.dead_letter_of
            else f"key: {spec.key}; consumed by: {', '.join(spec.consumed_by) or '-'}"
        )
        print(f"{spec.name:<32} partitions={spec.partitions} cleanup={spec.cleanup_policy}  {role}")
    return 0
