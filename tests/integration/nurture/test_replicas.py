"""Two real nurture workers in one group on 6-partition topics, joined mid-stream (a rebalance
while leads are being routed): no lead is assigned twice and no rep goes over capacity."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration.nurture.harness import (
    Reader,
    Setup,
    create_topics,
    metrics_text,
    produce,
    scored,
    start_worker,
    wait_ready,
    write_config,
)

pytestmark = [pytest.mark.slow]
REPS, CAPACITY, LEADS = 2, 10, 40


async def test_two_replicas_never_assign_a_lead_twice_or_exceed_a_capacity(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    books, directory = write_config(tmp_path, capacity=CAPACITY, reps=REPS)
    setup = Setup(f"r{unique}.", books, directory)
    await create_topics(kafka_bootstrap, setup, partitions=6)
    leads = [f"ld_{unique}_{n}" for n in range(LEADS)]
    # Every lead is scored twice (a re-score), so both replicas may see the same lead around the rebalance.
    events = [(setup.t("lead.scored.v1"), scored(lead, grade="A")) for lead in leads]
    events += [(setup.t("lead.scored.v1"), scored(lead, grade="A")) for lead in leads]
    env = {"KAFKA_SESSION_TIMEOUT_S": "6", "KAFKA_REBALANCE_TIMEOUT_S": "6"}
    a, a_port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path, name="a", **env)
    b = None
    try:
        await wait_ready(a_port)
        async with Reader(kafka_bootstrap, setup.t("lead.assigned.v1")) as out:
            await produce(kafka_bootstrap, events[: LEADS // 2])
            b, b_port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path, name="b", **env)
            await produce(kafka_bootstrap, events[LEADS // 2 : LEADS])
            await wait_ready(b_port)
            await asyncio.sleep(1.0)
            await produce(kafka_bootstrap, events[LEADS:])
            await out.until(lambda r: len(r.of("lead.assigned.v1")) >= REPS * CAPACITY, timeout_s=40)
            await out.poll(2.0)
            consumed = [await metrics_text(p) for p in (a_port, b_port)]
    finally:
        a.stop()
        if b is not None:
            b.stop()

    assigned = [e.data for e in out.of("lead.assigned.v1")]
    per_lead = Counter(x.lead_id for x in assigned)
    per_assignment = {x.assignment_id: x.rep_id for x in assigned}
    # A record repeated by a rebalance is the same assignment (same id, same rep), never a second one.
    assert len(per_assignment) == len(per_lead) == REPS * CAPACITY, per_lead
    assert all(x.attempt == 1 for x in assigned)
    per_rep = Counter(per_assignment.values())
    assert set(per_rep.values()) == {CAPACITY}, per_rep
    redis = Redis.from_url(redis_url)
    caps = [int(v) for v in await redis.mget([k async for k in redis.scan_iter(match=f"nurture:{unique}:cap:*")])]
    await redis.aclose()
    assert caps == [CAPACITY] * REPS
    # Both replicas took part (the partitions were split between them).
    for text in consumed:
        assert f'leadpipe_events_consumed_total{{service="nurture",topic="{setup.t("lead.scored.v1")}"}}' in text
