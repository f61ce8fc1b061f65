"""Redis is only an index: wipe every ``nurture:`` key between two runs of the real worker, or
under a running one, and the lead states, the due index and the pending touches come back from
the state topic."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from schemas.envelope import new_event
from schemas.notification_outcome.v1 import NotificationOutcome
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
LEADS = 8


async def test_a_lost_redis_is_rebuilt_from_the_state_topic_and_no_touch_is_lost_or_repeated(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    books, directory = write_config(tmp_path, second_step_s=2.5)
    setup = Setup(f"b{unique}.", books, directory)
    await create_topics(kafka_bootstrap, setup)
    leads = [f"ld_{unique}_{n}" for n in range(LEADS)]
    env = {"KAFKA_SESSION_TIMEOUT_S": "6", "KAFKA_REBALANCE_TIMEOUT_S": "6"}
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


def _outcome(lead: str, nid: str):  # type: ignore[no-untyped-def]
    data = NotificationOutcome(notification_id=nid, lead_id=lead, status="sent", channel="email", audience="lead",
                               attempts=1, completed_at=datetime.now(UTC))  # fmt: skip
    return new_event(data, source="/t", subject=lead)


async def test_a_redis_wiped_under_the_running_worker_is_rebuilt_before_the_next_batch_decides(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    books, directory = write_config(tmp_path, second_step_s=2.5)
    setup = Setup(f"w{unique}.", books, directory)
    await create_topics(kafka_bootstrap, setup)
    leads = [f"ld_{unique}_{n}" for n in range(LEADS)]
    proc, port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path)
    redis = Redis.from_url(redis_url)
    dlqs = [setup.t(t) + ".dlq" for t in ("lead.scored.v1", "notification.outcome.v1")]
    try:
        await wait_ready(port)
        async with Reader(kafka_bootstrap, setup.t("notification.requested.v1")) as out:
            await produce(kafka_bootstrap, [(setup.t("lead.scored.v1"), scored(lead, grade="B")) for lead in leads])
            await out.until(lambda r: len(r.of("notification.requested.v1")) >= LEADS, timeout_s=20)
            keys = [k async for k in redis.scan_iter(match=f"nurture:{unique}:*")]
            assert keys and await redis.delete(*keys) == len(keys)
            # Under the running worker: each lead's first touch comes back sent, and it is scored again.
            await produce(kafka_bootstrap, [item for lead in leads for item in (
                (setup.t("notification.outcome.v1"), _outcome(lead, f"touch:{lead}:0:grade_b:0")),
                (setup.t("lead.scored.v1"), scored(lead, grade="B")))])  # fmt: skip
            await out.until(lambda r: len(r.of("notification.requested.v1")) >= 3 * LEADS, timeout_s=30)
            await out.poll(1.0)
        text = await metrics_text(port)
    finally:
        proc.stop()
        await redis.aclose()
    ids = Counter(e.data.notification_id for e in out.of("notification.requested.v1"))
    assert set(ids) == {f"touch:{lead}:0:grade_b:{n}" for lead in leads for n in range(3)}
    assert set(ids.values()) == {1}, "a touch was requested again after the wipe"
    dead = AIOKafkaConsumer(*dlqs, bootstrap_servers=kafka_bootstrap, group_id=None, auto_offset_reset="earliest")
    await dead.start()
    try:
        records = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            records += [m for ms in (await dead.getmany(timeout_ms=200)).values() for m in ms]
    finally:
        await dead.stop()
    assert records == [], [dict(r.headers) for r in records]
    assert "leadpipe_nurture_rebuilds_total 2.0" in text


async def test_a_batch_that_finds_the_marker_gone_waits_for_the_rebuild_before_deciding(redis_url: str, tmp_path: Path):
    from tests.integration.nurture.test_batch import OUTCOME, SCORED, batch, raw

    redis = Redis.from_url(redis_url)
    rebuilt: list[int] = []

    async def from_the_log() -> None:  # the state topic, here the handler's list-backed log
        for state in log.states:
            await store.restore(state.model_dump_json().encode(), None)
        await store.mark_built()
        rebuilt.append(len(log.states))

    b, pub, log, sink = batch(redis, tmp_path, from_the_log)
    store = b.handler.handler.store
    lead = f"ld_{tmp_path.name[-8:]}"
    await store.mark_built()
    assert await b.process([raw(SCORED, scored(lead, grade="B"), 0)]) == 1
    [touch] = [e.data.notification_id for e in pub.events if e.type.endswith("notification.requested")]
    try:
        keys = [k async for k in redis.scan_iter(match=f"{store.prefix}*")]
        assert await redis.delete(*keys) == len(keys)
        outcome = _outcome(lead, touch)
        handled = await b.process([raw(OUTCOME, outcome, 1), raw(SCORED, scored(lead, grade="B"), 2)])
        state = await store.load(lead)
    finally:
        await redis.aclose()
    assert rebuilt == [1]
    assert handled == 2 and sink.records == []
    requested = [e.data.notification_id for e in pub.events if e.type.endswith("notification.requested")]
    assert requested == [touch], "the touch was planned again"
    assert state is not None and state.version > 1
