"""Does the console keep up? Projection lag at a steady load, then the time a rebuild takes.

    .venv/bin/python bench/console_bench.py [--rate 40] [--seconds 20]

A broker and a PostgreSQL (tests/infra.py); ``--rate`` leads per second, each with the eight
events a lead that is captured, scored, assigned, alerted, accepted, moved and engaged produces
(tests/integration/console), published as they happen. Lag of an event: from its publication to
the commit of the batch that projected it (what a rep waits for before the page shows it).
Then ``rebuild``: drop the projection and replay every topic into it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from leadpipe.runtime.kafka import ensure_topics, make_producer, publish
from services.console import projector
from services.console.adapters.metrics import ConsoleMetrics
from services.console.adapters.postgres_store import PostgresStore
from services.console.config import ConsoleSettings
from services.console.domain.projection import percentile
from services.console.handlers import Projector
from tests import infra
from tests.integration.console.test_projector import lead_events


class Timed(Projector):
    def __init__(self, store: PostgresStore, metrics: ConsoleMetrics, sent: dict[str, float]) -> None:
        super().__init__(store, metrics)
        self.sent, self.lags = sent, []  # type: ignore[var-annotated]

    async def handle(self, records: Sequence[Any]) -> int:
        new = await super().handle(records)
        done = time.monotonic()
        for r in records:
            eid = dict(r.headers).get("ce_id", b"").decode()
            if eid in self.sent:
                self.lags.append(done - self.sent[eid])
        return new


async def run(rate: int, seconds: int, bootstrap: str, database_url: str) -> None:
    settings = ConsoleSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused", database_url=database_url)
    await ensure_topics(bootstrap)
    store = await PostgresStore(database_url).connect()
    await store.migrate()
    sent: dict[str, float] = {}
    proj = Timed(store, ConsoleMetrics(CollectorRegistry()), sent)
    ready = asyncio.Event()
    task = asyncio.create_task(projector.run(settings, proj, ready))
    await asyncio.wait_for(ready.wait(), 60)
    producer = make_producer(settings)
    await producer.start()
    t0 = time.monotonic()
    n = 0
    sends: list[asyncio.Future[Any]] = []
    try:
        while time.monotonic() - t0 < seconds:
            events = lead_events(f"b{n}")
            for event in events:
                sent[event.id] = time.monotonic()
            sends.append(asyncio.gather(*(publish(producer, e, max_bytes=1_000_000) for e in events)))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        await asyncio.gather(*sends)
        while len(proj.lags) < len(sent) and time.monotonic() - t0 < seconds + 60:
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lags = proj.lags
    print(
        f"live: {n} leads ({len(sent)} events) at {rate} leads/s = {len(sent) / seconds:.0f} events/s; "
        f"projected {len(lags)}; lag p50 {percentile(lags, 50):.3f}s p99 {percentile(lags, 99):.3f}s max {max(lags):.3f}s"
    )
    t1 = time.monotonic()
    count = await projector.rebuild(settings, store, Projector(store, ConsoleMetrics(CollectorRegistry())))
    took = time.monotonic() - t1
    print(f"rebuild: {count} events in {took:.1f}s = {count / took:.0f} events/s")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=40, help="leads per second")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, infra.broker(Path(tmp)) as broker, infra.postgres(Path(tmp)) as url:
        asyncio.run(run(args.rate, args.seconds, broker.bootstrap, url))


if __name__ == "__main__":
    main()
