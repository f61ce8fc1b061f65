"""Redis is an index of the topics: when the notifier's keyspace is wiped, the delivery ledger
comes back from ``notification.outcome`` and the suppression list from ``lead.engagement``, so
an id re-requested after the wipe is not sent again and a suppressed address stays suppressed.

In-process tests use the session broker and Redis with the handler; the last test runs the real
worker and wipes its keyspace under it."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import ensure_topics, make_producer, publish
from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import TopicSpec
from services.notifier.adapters.rebuild import rebuild
from tests.integration.notifier.helpers import engagement, request

RETRY = "notification.retry.v1"


async def _wipe(redis: Redis[bytes], prefix: str) -> int:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    return int(await redis.delete(*keys)) if keys else 0


@pytest.fixture
async def topics(kafka_bootstrap: str, unique: str) -> dict[str, str]:
    t = {name: f"nr.{unique}.{name}" for name in ("requested", "outcome", "engagement", "retry")}
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, "lead id", 2) for name in t.values()])
    return t


@pytest.fixture
async def producer(kafka_bootstrap: str, redis_url: str) -> Any:
    p = make_producer(ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url))
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def _settings(kafka_bootstrap: str, topics: dict[str, str]) -> dict[str, Any]:
    return {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "notifier_requested_topic": topics["requested"],
        "notifier_outcome_topic": topics["outcome"],
        "notifier_engagement_topic": topics["engagement"],
        "notifier_retry_topic": topics["retry"],
    }


async def test_rebuild_restores_terminal_ids_and_suppressions_and_keeps_what_redis_already_holds(
    make_harness: Any, kafka_bootstrap: str, topics: dict[str, str], producer: AIOKafkaProducer
):
    h = make_harness(**_settings(kafka_bootstrap, topics), rebuildable=True)
    ledger = h.notifier.ledger
    for nid in ("n-sent", "n-kept"):
        await h.notifier.on_request(*request(nid=nid))
    outs = h.sink.on(topics["outcome"])
    assert len(outs) == 2
    for record in outs:
        await producer.send_and_wait(topics["outcome"], record.value, key=record.key, headers=record.headers)
    await producer.send_and_wait(topics["outcome"], b"not an envelope", key=b"x", headers=[])
    await publish(producer, engagement("unsubscribed", email="gone@example.com", channel="email"),
                  max_bytes=10**6, topic=topics["engagement"])  # fmt: skip
    await _wipe(h.redis, h.settings.notifier_redis_prefix)
    # Redis already has a later word on one id: the rebuild leaves it alone.
    await ledger.finish("n-kept", "failed", outs[1])

    done = await rebuild(h.settings, ledger, h.notifier.suppression, outcome_topic=topics["outcome"],
                         engagement_topic=topics["engagement"])  # fmt: skip

    assert (done.outcomes, done.restored, done.suppressions, done.skipped) == (2, 1, 1, 1)
    entry = await ledger.get("n-sent")
    assert (entry.state, entry.published, entry.attempts) == ("sent", True, 1)
    assert entry.outcome is not None and entry.outcome.value == outs[0].value
    assert (await ledger.get("n-kept")).state == "failed"
    assert await h.notifier.suppression.reason("email", "Gone@Example.com") == "unsubscribed"


async def test_a_request_after_a_wipe_rebuilds_first_and_a_sent_id_is_not_sent_again(
    make_harness: Any, smtp: Any, kafka_bootstrap: str, topics: dict[str, str], producer: AIOKafkaProducer
):
    h = make_harness(**_settings(kafka_bootstrap, topics), rebuildable=True)
    await h.notifier.ensure_built()
    assert h.metric("leadpipe_notifier_rebuilds_total") == 1
    event, msg = request(nid="n-once")
    await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.messages) == 1
    [out] = h.sink.on(topics["outcome"])
    await producer.send_and_wait(topics["outcome"], out.value, key=out.key, headers=out.headers)

    await _wipe(h.redis, h.settings.notifier_redis_prefix)
    await h.notifier.on_request(event, msg)

    assert len(smtp.inbox.messages) == 1, "sent again after the wipe"
    assert h.metric("leadpipe_notifier_rebuilds_total") == 2
    assert h.metric("leadpipe_notifier_duplicate_requests_total") == 1
    assert await h.notifier.ledger.is_built()


async def test_a_claim_without_the_built_marker_is_refused_and_the_request_decided_again(
    make_harness: Any, smtp: Any, kafka_bootstrap: str, topics: dict[str, str], producer: AIOKafkaProducer
):
    h = make_harness(**_settings(kafka_bootstrap, topics), rebuildable=True)
    await h.notifier.ensure_built()
    claim = await h.notifier.ledger.claim("n-raced", now=time.time(), lease_s=30)
    assert claim.status == "claimed"
    await h.notifier.ledger.release("n-raced")
    await _wipe(h.redis, h.settings.notifier_redis_prefix)
    assert (await h.notifier.ledger.claim("n-raced", now=time.time(), lease_s=30)).status == "unbuilt"
    assert not await h.redis.exists(h.notifier.ledger.key("n-raced"))


async def test_a_wipe_during_the_rebuild_makes_it_run_again(
    make_harness: Any, kafka_bootstrap: str, topics: dict[str, str]
):
    h = make_harness(**_settings(kafka_bootstrap, topics), rebuildable=True)
    inner = h.notifier.ledger.begin_rebuild
    calls = 0

    async def wiped_midway(token: str) -> bool:
        nonlocal calls
        calls += 1
        took = await inner(token)
        if calls == 1:  # wiped after the rebuild began: its token (and anything restored) gone
            await _wipe(h.redis, h.settings.notifier_redis_prefix)
        return took

    h.notifier.ledger.begin_rebuild = wiped_midway
    await h.notifier.ensure_built()
    assert calls == 2 and await h.notifier.ledger.is_built()


async def test_a_send_in_flight_when_redis_is_wiped_is_not_sent_again_by_this_worker(
    make_harness: Any, provider: Any, kafka_bootstrap: str, topics: dict[str, str]
):
    # The first send must still hang when the second delivery arrives, however long the rebuild
    # in between takes (a rebuild reads two topics: about a second on a busy machine).
    h = make_harness(**_settings(kafka_bootstrap, topics), rebuildable=True, notifier_http_timeout_s=15.0)
    await h.notifier.ensure_built()
    provider.script("/hooks/slow", "hang")
    event, msg = request(channel="webhook", address=f"{provider.url}/hooks/slow", nid="n-slow")
    first = asyncio.create_task(h.notifier.on_request(event, msg))
    deadline = time.monotonic() + 20
    while not provider.received and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(provider.received) == 1
    await _wipe(h.redis, h.settings.notifier_redis_prefix)

    await h.notifier.on_request(event, msg)  # a second delivery while the first send hangs
    provider.release.set()
    await first

    assert len(provider.received) == 1
    [retry] = h.sink.on(topics["retry"])
    assert dict(retry.headers)["notifier_reason"] == b"in flight in this worker"
    entry = await h.notifier.ledger.get("n-slow")
    assert entry.state == "sent"


@pytest.mark.chaos
@pytest.mark.slow
async def test_the_worker_rebuilds_a_keyspace_wiped_under_it_and_sends_nothing_twice(
    kafka_bootstrap: str, redis_url: str, smtp: Any, unique: str, tmp_path: Path, topics: dict[str, str],
    producer: AIOKafkaProducer,
):  # fmt: skip
    prefix = f"notifier:{unique}:"
    ops = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "LEADPIPE_STATE_DIR": str(tmp_path / "state"),
        "OPS_PORT": str(ops),
        "KAFKA_PARTITIONS": "2",
        "NOTIFIER_APP_ID": f"notifier-{unique}",
        "NOTIFIER_REDIS_PREFIX": prefix,
        "NOTIFIER_REQUESTED_TOPIC": topics["requested"],
        "NOTIFIER_OUTCOME_TOPIC": topics["outcome"],
        "NOTIFIER_ENGAGEMENT_TOPIC": topics["engagement"],
        "NOTIFIER_RETRY_TOPIC": topics["retry"],
        "NOTIFIER_EMAIL_TRANSPORT": "smtp",
        "NOTIFIER_SMTP_HOST": smtp.host,
        "NOTIFIER_SMTP_PORT": str(smtp.port),
        "NOTIFIER_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    argv = [sys.executable, "-m", "services.notifier"]
    worker = ManagedProcess("notifier", argv, tmp_path / "notifier.log", env=env).start()
    redis: Redis[bytes] = Redis.from_url(redis_url)
    try:
        await asyncio.to_thread(wait_for_port, ops, "127.0.0.1", 60.0, worker.proc)
        await publish(producer, engagement("unsubscribed", email="gone@example.com", channel="email"),
                      max_bytes=10**6, topic=topics["engagement"])  # fmt: skip
        alert, _ = request(nid=f"alert-{unique}")
        await publish(producer, alert, max_bytes=10**6, topic=topics["requested"])
        await _metric_at_least(ops, "leadpipe_notifier_sends_total", 1)
        await _metric_at_least(ops, "leadpipe_notifier_suppressions_recorded_total", 1)

        assert await _wipe(redis, prefix) > 0
        lead = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "G"}}
        gone, _ = request(address="gone@example.com", nid=f"gone-{unique}", **lead)
        await publish(producer, alert, max_bytes=10**6, topic=topics["requested"])  # requested again
        await publish(producer, gone, max_bytes=10**6, topic=topics["requested"])
        # Both requests share a partition: once the second has an outcome, the first was handled.
        await _metric_at_least(ops, "leadpipe_notifier_sends_total", 2)
        assert [rcpts for _, rcpts in smtp.inbox.envelopes] == [["ana@sales.example"]], "sent twice"
        await _metric_at_least(ops, "leadpipe_notifier_rebuilds_total", 2)
        await _metric_at_least(ops, "leadpipe_notifier_duplicate_requests_total", 1)
        assert await redis.exists(f"{prefix}meta:built")
    finally:
        worker.stop()
        await redis.aclose()  # type: ignore[attr-defined]
    assert [rcpts for _, rcpts in smtp.inbox.envelopes] == [["ana@sales.example"]]
    text = (tmp_path / "notifier.log").read_text()
    assert "rebuilding it from Kafka" in text


async def _metric_at_least(ops: int, name: str, at_least: float, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    value = 0.0
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                body = (await client.get(f"http://127.0.0.1:{ops}/metrics")).text
                value = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                            if line.startswith((name + " ", name + "{")))  # fmt: skip
            except httpx.HTTPError:
                value = 0.0
            if value >= at_least:
                return value
            await asyncio.sleep(0.2)
    raise AssertionError(f"{name} stayed at {value} < {at_least} for {timeout_s}s")


async def test_an_outcome_recorded_before_a_wipe_and_published_after_it_leaves_the_id_terminal(
    make_harness: Any, smtp: Any, kafka_bootstrap: str, topics: dict[str, str]
):
    h = make_harness(**_settings(kafka_bootstrap, topics), rebuildable=True)
    await h.notifier.ensure_built()
    event, msg = request(nid="n-late")
    await h.notifier.on_request(event, msg)
    [out] = h.sink.on(topics["outcome"])
    await _wipe(h.redis, h.settings.notifier_redis_prefix)
    await h.notifier.ensure_built()  # the outcome is not on the topic: nothing to restore
    assert (await h.notifier.ledger.get("n-late")).state is None

    await h.notifier.ledger.mark_published("n-late", "sent", out)  # the publish that came late

    entry = await h.notifier.ledger.get("n-late")
    assert (entry.state, entry.published) == ("sent", True)
    await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.messages) == 1
