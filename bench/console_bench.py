"""Does the console keep up? Projection lag at steady loads against a raw consume of the same
topics in the same run, then catch-up speed (a rebuild) against a raw read of the same topics.

    .venv/bin/python bench/console_bench.py [--rates 50,100,250,360,540] [--seconds 15]

A broker and a PostgreSQL (tests/infra.py). Load: the lead event mix of tests/integration/console
(nine events per lead: captured, scored, assigned, rep alert requested and sent, accepted, stage
changed, meeting, rescored), published one event at a time, evenly spaced, at each rate in events/s
(the pipeline bench's 40-60 leads/s are 360-540 events/s of this mix), by a producer in its own
process. Two readers follow the topics at once, in this process:

- the console's projector (consumer group, decode, one PostgreSQL transaction per consumed batch,
  offsets committed after it); an event's lag: its publication to the commit of the batch that
  projected it (what a rep waits for before a page shows it);
- a raw consume: a bare aiokafka consumer of the same partitions; lag: publication to receipt.

Then ``rebuild`` (drop the projection and replay every topic into it) against a raw read of the
same partitions from the start, in events/s. Results also go to bench/results/console.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from leadpipe.runtime.kafka import ensure_topics, make_consumer, make_producer, publish, read_to_end, topic_partitions
from services.console import projector
from services.console.adapters.metrics import ConsoleMetrics
from services.console.adapters.postgres_store import PostgresStore
from services.console.config import ConsoleSettings
from services.console.domain.projection import percentile
from services.console.handlers import TOPICS, Projector
from tests import infra
from tests.integration.console.test_projector import lead_events

RESULTS = Path(__file__).resolve().parent / "results" / "console.json"


def _ids(records: Sequence[Any]) -> list[str]:
    return [dict(r.headers).get("ce_id", b"").decode() for r in records]


class Timed(Projector):
    """The projector, noting when each event's batch committed."""

    def __init__(self, store: PostgresStore, metrics: ConsoleMetrics, done: dict[str, float]) -> None:
        super().__init__(store, metrics, privacy_secret="dev-privacy-secret")
        self.done = done

    async def handle(self, records: Sequence[Any]) -> int:
        new = await super().handle(records)
        now = time.monotonic()
        for eid in _ids(records):
            self.done.setdefault(eid, now)
        return new


async def raw_follow(settings: ConsoleSettings, seen: dict[str, float], ready: asyncio.Event) -> None:
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = [tp for tps in (await topic_partitions(consumer, TOPICS)).values() for tp in tps]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            now = time.monotonic()
            for records in batch.values():
                for eid in _ids(records):
                    seen.setdefault(eid, now)
    finally:
        await consumer.stop()


async def raw_read_all(settings: ConsoleSettings) -> int:
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    count = 0
    try:
        tps = [tp for tps in (await topic_partitions(consumer, TOPICS)).values() for tp in tps]

        async def counted(records: list[Any]) -> None:
            nonlocal count
            count += len(records)

        await read_to_end(consumer, tps, counted)
    finally:
        await consumer.stop()
    return count


def stats(lags: list[float]) -> dict[str, float | None]:
    return {
        "p50_s": percentile(lags, 50),
        "p99_s": percentile(lags, 99),
        "max_s": max(lags) if lags else None,
    }


async def produce(bootstrap: str, rate: float, seconds: float, tag: str, out: Path) -> None:
    """The load, in its own process (``--produce``): the console's process does nothing else but
    follow the topics. Writes each event's send time (CLOCK_MONOTONIC: the same clock in every
    process of the machine) and the rate it managed to offer."""
    settings = ConsoleSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused", database_url="unused")
    events = []
    n = 0
    while len(events) < rate * seconds:
        events += lead_events(f"{tag}-{n}")
        n += 1
    events = events[: int(rate * seconds)]
    producer = make_producer(settings)
    await producer.start()
    sent: dict[str, float] = {}
    pending: list[asyncio.Future[Any]] = []
    try:
        t0 = time.monotonic()
        for i, event in enumerate(events):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            sent[event.id] = time.monotonic()
            pending.append(asyncio.ensure_future(publish(producer, event, max_bytes=1_000_000)))
        offered = len(events) / (time.monotonic() - t0)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    out.write_text(json.dumps({"offered": offered, "sent": sent}))


async def one_rate(
    bootstrap: str, rate: float, seconds: float, tag: str, done: dict[str, float], seen: dict[str, float]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sent.json"
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--produce", bootstrap, str(rate), str(seconds), tag, str(out)
        )
        if await child.wait() != 0:
            raise RuntimeError(f"the load generator failed ({child.returncode})")
        produced = json.loads(out.read_text())
    sent: dict[str, float] = produced["sent"]
    offered = produced["offered"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(e in done and e in seen for e in sent):
        await asyncio.sleep(0.1)
    console = [done[e] - s for e, s in sent.items() if e in done]
    raw = [seen[e] - s for e, s in sent.items() if e in seen]
    result = {
        "rate_events_per_s": rate,
        "offered_events_per_s": round(offered, 1),
        "leads_per_s": round(rate / 9, 1),
        "events": len(sent),
        "projected": len(console),
        "console": stats(console),
        "raw_consume": stats(raw),
    }
    c, r = result["console"], result["raw_consume"]
    print(
        f"{rate:>5g} events/s ({rate / 9:.1f} leads/s, offered {offered:.0f}/s): {len(console)}/{len(sent)} projected;"
        f" console lag p50 {c['p50_s']:.3f}s p99 {c['p99_s']:.3f}s max {c['max_s']:.3f}s;"
        f" raw consume p50 {r['p50_s']:.3f}s p99 {r['p99_s']:.3f}s;"
        f" p99 ratio {c['p99_s'] / max(r['p99_s'], 1e-3):.1f}x",
        flush=True,
    )
    return result


async def run(rates: list[float], seconds: float, bootstrap: str, database_url: str) -> dict[str, Any]:
    settings = ConsoleSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused", database_url=database_url)
    await ensure_topics(bootstrap)
    store = await PostgresStore(database_url).connect()
    await store.migrate()
    done: dict[str, float] = {}
    seen: dict[str, float] = {}
    proj = Timed(store, ConsoleMetrics(CollectorRegistry()), done)
    ready, raw_ready = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(projector.run(settings, proj, ready)),
        asyncio.create_task(raw_follow(settings, seen, raw_ready)),
    ]
    await asyncio.wait_for(asyncio.gather(ready.wait(), raw_ready.wait()), 60)
    out: dict[str, Any] = {"seconds_per_rate": seconds, "load_average_at_start": os.getloadavg()[0], "live": []}
    try:
        for i, rate in enumerate(rates):
            out["live"].append(await one_rate(bootstrap, rate, seconds, f"r{i}", done, seen))
            out["live"][-1]["load_average"] = os.getloadavg()[0]
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    t1 = time.monotonic()
    raw_count = await raw_read_all(settings)
    raw_took = time.monotonic() - t1
    t1 = time.monotonic()
    count = await projector.rebuild(
        settings,
        store,
        Projector(store, ConsoleMetrics(CollectorRegistry()), privacy_secret=settings.leadpipe_privacy_secret),
    )
    took = time.monotonic() - t1
    out["catch_up"] = {
        "events": count,
        "rebuild_events_per_s": round(count / took),
        "raw_read_events_per_s": round(raw_count / raw_took),
        "ratio": round((count / took) / (raw_count / raw_took), 3),
    }
    cu = out["catch_up"]
    print(
        f"catch-up: rebuild {count} events in {took:.1f}s = {cu['rebuild_events_per_s']}/s;"
        f" raw read {raw_count} in {raw_took:.1f}s = {cu['raw_read_events_per_s']}/s; ratio {cu['ratio']}"
    )
    await store.close()
    return out


def main() -> None:
    if sys.argv[1:2] == ["--produce"]:
        bootstrap, rate, seconds, tag, out = sys.argv[2:7]
        asyncio.run(produce(bootstrap, float(rate), float(seconds), tag, Path(out)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="50,100,250,360,540", help="events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp, infra.broker(Path(tmp)) as broker, infra.postgres(Path(tmp)) as url:
        out = asyncio.run(run(rates, args.seconds, broker.bootstrap, url))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
