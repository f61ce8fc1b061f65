"""The canary against the session broker, with a stand-in for the pipeline on private topics.

The relay plays scoring-to-notifier: it reads each captured lead and answers with a
``notification.outcome`` caused by it (so the correlation id and synthetic flag carry over),
as the real services do.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from leadpipe.canary import WATCH_IDLE_FETCH_WAIT_MS, Canary, CanaryMetrics, run_canary, watch_settings
from leadpipe.ops.reader import plain_consumer
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.kafka import ensure_topics, publish
from schemas import NotificationOutcome, decode, new_event
from schemas.topics import TopicSpec


async def _relay(settings: OpsSettings, captured: str, outcome: str, seen: list[bool], delay_s: float = 0.0) -> None:
    consumer = plain_consumer(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        from aiokafka import TopicPartition

        tp = TopicPartition(captured, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for msg in msgs:
                    event = decode(msg.value, [(k, bytes(v)) for k, v in msg.headers])
                    seen.append(event.synthetic)
                    await asyncio.sleep(delay_s)
                    done = NotificationOutcome(
                        notification_id=f"n-{event.id}",
                        lead_id="ld_canary",
                        status="sent",
                        channel="email",  # type: ignore[arg-type]
                        audience="rep",
                        attempts=1,
                        completed_at=event.time,
                        provider_response="synthetic: not delivered",
                    )
                    await publish(
                        producer,
                        new_event(done, source="relay", subject="ld_canary", cause=event),
                        max_bytes=1_000_000,
                        topic=outcome,
                    )
    finally:
        await producer.stop()
        await consumer.stop()


def _canary(
    settings: OpsSettings, registry: CollectorRegistry, captured: str, outcome: str, *, timeout_s: float
) -> Canary:
    """A canary that posts to ``captured`` and waits for its outcome on ``outcome`` (one topic each)."""
    return Canary(settings, CanaryMetrics(registry), timeout_s=timeout_s, captured_topic=captured,
                  watched=(outcome,), outcome_topic=outcome)  # fmt: skip


async def _topics(bootstrap: str, *names: str) -> None:
    await ensure_topics(bootstrap, [TopicSpec(name=n, key="lead id", partitions=1) for n in names])


async def test_a_canary_that_comes_back_sent_records_its_success(registry_topics: str, unique: str) -> None:
    captured, outcome = f"canary.{unique}.captured", f"canary.{unique}.outcome"
    await _topics(registry_topics, captured, outcome)
    settings = OpsSettings(kafka_bootstrap_servers=registry_topics)
    registry = CollectorRegistry()
    canary = _canary(settings, registry, captured, outcome, timeout_s=20)
    started = registry.get_sample_value("leadpipe_canary_last_success_timestamp_seconds")
    seen: list[bool] = []
    relay = asyncio.create_task(_relay(settings, captured, outcome, seen))
    try:
        code = await run_canary(settings, interval_s=0.2, count=2, port=0, canary=canary)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
    assert code == 0
    assert seen == [True, True]
    assert registry.get_sample_value("leadpipe_canary_completed_total") == 2
    assert registry.get_sample_value("leadpipe_canary_round_trip_seconds_count") == 2
    assert registry.get_sample_value("leadpipe_canary_last_success_timestamp_seconds") > started
    assert registry.get_sample_value("leadpipe_canary_stage_last_seen_timestamp_seconds", {"topic": outcome}) > started


async def test_a_canary_nothing_answers_fails_by_timeout(registry_topics: str, unique: str) -> None:
    captured, outcome = f"canary.{unique}.captured", f"canary.{unique}.outcome"
    await _topics(registry_topics, captured, outcome)
    settings = OpsSettings(kafka_bootstrap_servers=registry_topics)
    registry = CollectorRegistry()
    canary = _canary(settings, registry, captured, outcome, timeout_s=1.0)
    code = await run_canary(settings, count=1, port=0, canary=canary)
    assert code == 1
    assert registry.get_sample_value("leadpipe_canary_failed_total", {"reason": "timeout"}) == 1
    assert registry.get_sample_value("leadpipe_canary_completed_total") == 0


async def test_the_outcome_ends_the_canarys_idle_long_poll_at_once(registry_topics: str, unique: str) -> None:
    # The outcome comes 1 s after the lead, while the watching consumer is in a fetch that may wait
    # WATCH_IDLE_FETCH_WAIT_MS (10 s): the round trip is the relay's second, not the fetch's wait.
    captured, outcome = f"canary.{unique}.captured", f"canary.{unique}.outcome"
    await _topics(registry_topics, captured, outcome)
    settings = OpsSettings(kafka_bootstrap_servers=registry_topics)
    assert watch_settings(settings).kafka_fetch_idle_wait_ms == WATCH_IDLE_FETCH_WAIT_MS == 10_000
    registry = CollectorRegistry()
    canary = _canary(settings, registry, captured, outcome, timeout_s=30)
    seen: list[bool] = []
    relay = asyncio.create_task(_relay(settings, captured, outcome, seen, delay_s=1.0))
    try:
        code = await run_canary(settings, count=1, port=0, canary=canary)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
    assert code == 0 and seen == [True]
    took = registry.get_sample_value("leadpipe_canary_round_trip_seconds_sum")
    assert took is not None and 1.0 <= took < WATCH_IDLE_FETCH_WAIT_MS / 2000, f"round trip {took:.1f} s"


def test_the_watching_consumer_keeps_a_longer_idle_wait_when_one_is_configured() -> None:
    settings = OpsSettings(kafka_bootstrap_servers="unused:9092", kafka_fetch_idle_wait_ms=20_000)
    assert watch_settings(settings).kafka_fetch_idle_wait_ms == 20_000
    assert watch_settings(settings).kafka_fetch_max_wait_ms == settings.kafka_fetch_max_wait_ms
