"""``leadpipe tail|dlq|lag|canary``: look at and repair the running pipeline."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any


def _bootstrap_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = sub.add_parser("tail", help="print a topic's records, decoded, as pretty JSON")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record (default: new ones)")
    tail.add_argument("--max", type=int, default=None, help="stop after N records")
    tail.add_argument("--no-follow", action="store_true", help="stop at the end instead of waiting for more")
    _bootstrap_arg(tail)
    tail.set_defaults(func=_tail)

    dlq = sub.add_parser("dlq", help="dead-letter topics: list, show, replay")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True)
    lst = dsub.add_parser("list", help="every dead-letter topic with its depth and error reasons")
    lst.add_argument("topics", nargs="*", help="DLQs or the topics they serve (default: every DLQ of the registry)")
    lst.add_argument("--json", action="store_true")
    _bootstrap_arg(lst)
    lst.set_defaults(func=_dlq_list)
    show = dsub.add_parser("show", help="the dead-lettered records of a topic, decoded, with their errors")
    show.add_argument("topic", help="the DLQ (lead.captured.v1.dlq) or the topic it serves (lead.captured.v1)")
    show.add_argument("--max", type=int, default=20)
    show.add_argument("--pending", action="store_true", help="only records not replayed yet")
    _bootstrap_arg(show)
    show.set_defaults(func=_dlq_show)
    rep = dsub.add_parser("replay", help="re-publish dead letters to their original topic, once")
    rep.add_argument("topics", nargs="*", help="DLQs or the topics they serve (default: every DLQ)")
    rep.add_argument("--dry-run", action="store_true", help="count what would be replayed; publish nothing")
    rep.add_argument("--max", type=int, default=None, help="replay at most N records")
    rep.add_argument("--json", action="store_true")
    _bootstrap_arg(rep)
    rep.set_defaults(func=_dlq_replay)

    lag = sub.add_parser("lag", help="consumer lag per group, topic and partition")
    lag.add_argument("--group", action="append", default=None, help="only this group (repeatable)")
    lag.add_argument("--topic", action="append", default=None, help="also look at this topic (repeatable)")
    lag.add_argument("--json", action="store_true")
    _bootstrap_arg(lag)
    lag.set_defaults(func=_lag)

    canary = sub.add_parser("canary", help="publish a synthetic lead on a timer and watch it reach the notifier")
    canary.add_argument("--interval", type=float, default=30.0, help="seconds between canary leads")
    canary.add_argument("--timeout", type=float, default=120.0, help="seconds a canary may take end to end")
    canary.add_argument("--count", type=int, default=None, help="stop after N canaries (default: run forever)")
    canary.add_argument(
        "--port", type=int, default=int(os.environ.get("CANARY_PORT", "9105")), help="/metrics port (0: none)"
    )
    canary.add_argument("--host", default=os.environ.get("CANARY_HOST", "127.0.0.1"))
    _bootstrap_arg(canary)
    canary.set_defaults(func=_canary)


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapped(args: argparse.Namespace) -> int:
        from aiokafka.errors import KafkaConnectionError, KafkaError
        from pydantic import ValidationError

        from leadpipe.ops import OpsError

        try:
            return fn(args)
        except OpsError as exc:
            print(f"leadpipe: error: {exc}", file=sys.stderr)
            return 2
        except ValidationError as exc:
            missing = [".".join(str(p) for p in e["loc"]).upper() for e in exc.errors() if e["type"] == "missing"]
            print(f"leadpipe: error: missing setting {', '.join(missing) or exc}; pass --bootstrap", file=sys.stderr)
            return 2
        except (KafkaConnectionError, KafkaError) as exc:
            print(f"leadpipe: error: Kafka: {exc}", file=sys.stderr)
            return 3

    wrapped.__name__ = fn.__name__
    return wrapped


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False)


@_guard
def _tail(args: argparse.Namespace) -> int:
    from leadpipe.ops.reader import partitions, plain_consumer, read, render
    from leadpipe.ops.settings import settings_for

    settings = settings_for(args.bootstrap)

    async def go() -> int:
        consumer = plain_consumer(settings)
        await consumer.start()
        try:
            tps = await partitions(consumer, args.topic)
            starts = await (consumer.beginning_offsets(tps) if args.from_beginning else consumer.end_offsets(tps))
            follow = not args.no_follow
            n = 0
            async for item in read(consumer, dict(starts), follow=follow, max_records=args.max):
                print(_dump(render(item)), flush=True)
                n += 1
            return n
        finally:
            await consumer.stop()

    try:
        n = asyncio.run(go())
    except KeyboardInterrupt:
        return 0
    print(f"{n} record(s)", file=sys.stderr)
    return 0


@_guard
def _dlq_list(args: argparse.Namespace) -> int:
    from leadpipe.ops.dlq import summarize
    from leadpipe.ops.settings import settings_for

    summaries = asyncio.run(summarize(settings_for(args.bootstrap), args.topics or None))
    if args.json:
        print(_dump([s.as_dict() for s in summaries]))
        return 0
    print(f"{'DLQ':<36} {'RECORDS':>8} {'REPLAYED':>9} {'PENDING':>8}  REASONS")
    for s in summaries:
        reasons = "; ".join(f"{r} x{n}" for r, n in s.reasons.most_common(3)) or "-"
        print(f"{s.topic:<36} {s.records:>8} {s.replayed:>9} {s.pending:>8}  {reasons}")
        if s.last_error:
            print(f"{'':<36} last error ({s.last_failed_at}): {s.last_error}")
    return 0


@_guard
def _dlq_show(args: argparse.Namespace) -> int:
    from leadpipe.ops.dlq import show
    from leadpipe.ops.settings import settings_for

    records = asyncio.run(
        show(settings_for(args.bootstrap), args.topic, max_records=args.max, pending_only=args.pending)
    )
    for record in records:
        print(_dump(record))
    print(f"{len(records)} record(s)", file=sys.stderr)
    return 0


@_guard
def _dlq_replay(args: argparse.Namespace) -> int:
    from leadpipe.ops.dlq import replay
    from leadpipe.ops.settings import settings_for

    results = asyncio.run(
        replay(settings_for(args.bootstrap), args.topics or None, dry_run=args.dry_run, max_records=args.max)
    )
    if args.json:
        print(_dump([r.as_dict() for r in results]))
    else:
        verb = "would replay" if args.dry_run else "replayed"
        for r in results:
            if r.replayed or r.skipped:
                print(f"{r.topic}: {verb} {r.replayed} to {r.origin}, skipped {r.skipped}")
            for problem in r.problems:
                print(f"  {problem}")
        total = sum(r.replayed for r in results)
        print(f"{verb} {total} record(s) in total")
    return 0


@_guard
def _lag(args: argparse.Namespace) -> int:
    from leadpipe.ops.lag import consumer_lag
    from leadpipe.ops.settings import settings_for

    rows = asyncio.run(consumer_lag(settings_for(args.bootstrap), args.group, args.topic))
    if args.json:
        print(
            _dump(
                [
                    {
                        "group": r.group,
                        "topic": r.topic,
                        "partition": r.partition,
                        "committed": r.committed,
                        "end": r.end,
                        "lag": r.lag,
                    }
                    for r in rows
                ]
            )
        )
        return 0
    print(f"{'GROUP':<28} {'TOPIC':<32} {'PART':>4} {'COMMITTED':>10} {'END':>10} {'LAG':>8}")
    for r in rows:
        print(f"{r.group:<28} {r.topic:<32} {r.partition:>4} {r.committed:>10} {r.end:>10} {r.lag:>8}")
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.group] = totals.get(r.group, 0) + r.lag
    for group, total in sorted(totals.items()):
        print(f"total lag of {group}: {total}")
    return 0


@_guard
def _canary(args: argparse.Namespace) -> int:
    from leadpipe.canary import run_canary
    from leadpipe.ops.settings import settings_for
    from leadpipe.runtime.logs import setup_logging

    settings = settings_for(args.bootstrap)
    setup_logging("canary", level=settings.log_level, json_logs=settings.log_json)
    try:
        return asyncio.run(
            run_canary(
                settings,
                interval_s=args.interval,
                timeout_s=args.timeout,
                count=args.count,
                host=args.host,
                port=args.port,
            )
        )
    except KeyboardInterrupt:
        return 0
