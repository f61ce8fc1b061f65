"""How long scoring takes to rebuild a wiped Redis, and what a replay of the inputs would cost.

    .venv/bin/python bench/scoring_rebuild_bench.py [--leads 10000] [--engagements 2]

1. ``replay (in memory)``: the events behind N leads (a capture and E engagements each) through
   the real ``Scorer`` on an in-memory keyspace: the CPU a replay of ``lead.captured`` and
   ``lead.engagement`` would spend before reading Kafka or writing Redis (its lower bound);
2. the resulting lead states are appended to a compacted state topic on a real broker;
3. ``rebuild``: ``services.scoring.adapters.state_log.rebuild`` into an empty real Redis (read the
   topic to its end, restore states and links): what a worker does when it finds Redis wiped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadpipe.runtime.kafka import make_producer
from schemas.envelope import new_event
from services.scoring.adapters.redis_store import RedisLeadStore
from services.scoring.adapters.state_log import StateLog, ensure_state_topic, rebuild
from services.scoring.config import ScoringSettings
from services.scoring.handlers import identifiers_of
from tests import infra
from tests.unit.scoring.leads import T0, capture, days, engagement
from tests.unit.scoring.world import World

KINDS = ("email_opened", "email_clicked", "page_visit", "email_replied")


async def main(leads: int, engagements: int) -> None:
    world = World()
    events = []
    for n in range(leads):
        email = f"p{n}@acme{n % 300}.com"
        events.append(capture(email=email, phone=f"+1415555{n % 10000:04d}", capture_id=f"c-{n}", title="Director"))
        events += [engagement(KINDS[k % 4], email=email, at=T0 + days(k + 1)) for k in range(engagements)]
    envelopes = [new_event(e, source="/bench", subject="k", id=f"evt-{i}") for i, e in enumerate(events)]
    started = time.perf_counter()
    snap = world.snapshot()  # one keyspace the scorer changes in place, as one big batch would
    for env in envelopes:
        world.scorer.handle(env, identifiers_of(env), snap)
    world.apply(snap)
    replay_s = time.perf_counter() - started
    print(f"replay (in memory, no Kafka read, no Redis write): {len(envelopes)} events -> {len(world.leads)} leads "
          f"in {replay_s:.2f}s ({len(envelopes) / replay_s:,.0f} events/s)")  # fmt: skip

    tmp = Path(tempfile.mkdtemp(prefix="scoring-rebuild-bench-"))
    with infra.broker(tmp) as broker, infra.redis(tmp / "redis") as server:
        settings = ScoringSettings(kafka_bootstrap_servers=broker.bootstrap, redis_url=server.url)
        topic = "scoring.state.bench"
        await ensure_state_topic(settings, topic)
        producer = make_producer(settings, linger_ms=20, max_batch_size=512 * 1024)
        await producer.start()
        try:
            states = list(world.leads.values())
            for i in range(0, len(states), 1000):
                await StateLog(producer, topic).append(states[i : i + 1000])
        finally:
            await producer.stop()
        redis = Redis.from_url(server.url)
        store = RedisLeadStore(redis, "bench:")
        try:
            runs = []
            for _ in range(3):
                await redis.flushall()
                started = time.perf_counter()
                restored = await rebuild(settings, topic, store, StateLog(None, topic))
                runs.append(time.perf_counter() - started)
                assert restored == len(states), (restored, len(states))
            size = sum(len(v) for v in await redis.mget([store.lead_key(s.lead_id) for s in states[:100]])) / 100
        finally:
            await redis.aclose()
    print(f"rebuild from the state topic: {len(states)} leads (about {size / 1000:.1f} kB each) in "
          f"{', '.join(f'{r:.2f}s' for r in runs)} (3 runs; read topic + restore states and links)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--engagements", type=int, default=2, help="engagements per lead")
    args = parser.parse_args()
    asyncio.run(main(args.leads, args.engagements))
