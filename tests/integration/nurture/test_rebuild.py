"""Redis is only an index: wipe every ``nurture:`` key between two runs of the real worker and
the lead states, the due index and the pending touches come back from the state topic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration.nurture.harness import (
    Reader,
    Setup,
    create_topics,
    produce,
    scored,
    start_worker,
    wait_ready,
    write_config,
)

pytestmark = [pytest.mark.slow]
LEADS = 8


async def test_a_lost_redis_is_rebuilt_from_the_state_topic_and_no_touch_is_lost_or_repeated(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    books, directory = write_config(tmp_path, second_step_s=2.5)
    setup = Setup(f"b{unique}.", books, directory)
    await create_topics(kafka_bootstrap, setup)
    leads = [f"ld_{unique}_{n}" for n in range(LEADS)]
    env = {"KAFKA_SESSION_TIMEOUT_S": "3", "KAFKA_REBALANCE_TIMEOUT_S": "3"}
    proc, port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path, **env)
    redis = Redis.from_url(redis_url)
    try:
        await wait_ready(port)
        async with Reader(kafka_bootstrap, setup.t("notification.requested.v1")) as out:
            await produce(kafka_bootstrap, [(setup.t("lead.scored.v1"), scored(lead, grade="B")) for lead in leads])
            await out.until(lambda r: len(r.of("notification.requested.v1")) >= LEADS, timeout_s=20)
            proc.stop()
            keys = [k async for k in redis.scan_iter(match=f"nurture:{unique}:*")]
            assert keys and await redis.delete(*keys) == len(keys)
            proc, port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path, **env)
            await wait_ready(port)
            await out.until(lambda r: len(r.of("notification.requested.v1")) >= 3 * LEADS, timeout_s=30)
            await out.poll(1.0)
        states = [k async for k in redis.scan_iter(match=f"nurture:{unique}:lead:*")]
    finally:
        proc.stop()
        await redis.aclose()
    ids = Counter(e.data.notification_id for e in out.of("notification.requested.v1"))
    assert set(ids) == {f"touch:{lead}:0:grade_b:{n}" for lead in leads for n in range(3)}
    assert set(ids.values()) == {1}, "a touch was requested again after the rebuild"
    assert len(states) == LEADS
