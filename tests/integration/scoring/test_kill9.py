"""kill -9 the real scoring process mid-stream, restart it: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from tests.integration.scoring.harness import (
    Reader,
    Topics,
    capture_event,
    create_topics,
    engagement_event,
    produce,
    wait_ready,
    worker,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

LEADS = 150
KINDS = ("email_opened", "email_clicked", "page_visit")


async def test_state_survives_a_kill_9_mid_stream_and_no_event_counts_twice(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    topics = Topics(f"cap-{unique}", f"eng-{unique}", f"scored-{unique}")
    await create_topics(kafka_bootstrap, topics.all)
    emails = [f"p{n}@example.com" for n in range(LEADS)]
    captures = [(topics.captured, capture_event(e, id=f"cap-{n}")) for n, e in enumerate(emails)]
    engagements = [
        (topics.engagement, engagement_event(e, kind, id=f"eng-{n}-{kind}"))
        for n, e in enumerate(emails)
        for kind in KINDS
    ]
    proc, port = worker(kafka_bootstrap, redis_url, unique, topics, tmp_path)
    try:
        await wait_ready(port)
        async with Reader(kafka_bootstrap, topics.scored) as out:
            await produce(kafka_bootstrap, captures)
            await out.until(lambda xs: len(xs) >= LEADS // 3, timeout_s=60)
            await produce(kafka_bootstrap, engagements[: len(engagements) // 2])
            await out.until(lambda xs: len(xs) >= LEADS + 10, timeout_s=60)
            proc.kill9()  # mid-stream: engagements are still being scored, offsets partly committed
            await produce(kafka_bootstrap, engagements[len(engagements) // 2 :])
            proc, port = worker(kafka_bootstrap, redis_url, unique, topics, tmp_path)
            await wait_ready(port)
            redis = Redis.from_url(redis_url)
            prefix = f"scoring:{unique}:lead:"

            async def all_counted() -> bool:
                keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=500)]
                if len(keys) < LEADS:
                    return False
                states = [orjson.loads(v) for v in await redis.mget(keys)]
                return all(len(s["engagements"]) == len(KINDS) for s in states)

            for _ in range(300):
                if await all_counted():
                    break
                await asyncio.sleep(0.2)
            keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=500)]
            states = [orjson.loads(v) for v in await redis.mget(keys)]
            await redis.aclose()
            events = await out.until(lambda xs: len({x.data.lead_id for x in xs}) >= LEADS, timeout_s=30)
    finally:
        proc.stop()

    assert len(states) == LEADS
    for state in states:
        ids = [e["event_id"] for e in state["engagements"]]
        assert len(ids) == len(set(ids)) == len(KINDS), state["lead_id"]
    # Every lead was published, and re-published outputs after the crash keep their event ids.
    assert len({e.data.lead_id for e in events}) == LEADS
    by_id: dict[str, str] = {}
    for e in events:
        assert by_id.setdefault(e.id, e.data.lead_id) == e.data.lead_id
