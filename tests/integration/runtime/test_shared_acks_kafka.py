"""``SharedAcks`` against the session broker: leads of a batch that reach their publish at
different moments (each after a round trip of its own) send their outputs in one go, in a
produce request or two, where each lead's own publish sent requests of its own; every output
is on the topic once the leads went on."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from leadpipe.runtime.kafka import ensure_topics, make_producer
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import KafkaPublisher, SharedAcks
from leadpipe.runtime.settings import ServiceSettings
from schemas.envelope import Envelope, new_event
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.topics import TopicSpec

LEADS = 24


def _outcome(n: int) -> Envelope[Any]:
    data = NotificationOutcome(notification_id=f"n-{n}", lead_id=f"ld_{n}", status="sent", channel="email",
                               audience="lead", attempts=1, completed_at=datetime.now(UTC))  # fmt: skip
    return new_event(data, source="/t", subject=data.lead_id)


async def _leads(publish: Callable[[Sequence[Envelope[Any]]], Awaitable[None]], acks: SharedAcks | None) -> None:
    async def lead(n: int) -> None:
        if acks is not None:
            acks.enter()
        try:
            await asyncio.sleep(0.003 * n)  # its own round trip first (a rep reserved in Redis)
            await publish([_outcome(n)])
        finally:
            if acks is not None:
                acks.leave()

    await asyncio.gather(*(lead(n) for n in range(LEADS)))


def _counting(producer: AIOKafkaProducer) -> Counter[str]:
    sent: Counter[str] = Counter()
    send = producer.client.send

    async def counted(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        sent[type(request).__name__] += 1
        return await send(node_id, request, *args, **kwargs)

    producer.client.send = counted  # type: ignore[method-assign]
    return sent


async def test_leads_sharing_acks_send_their_outputs_together_where_their_own_publishes_did_not(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic = f"{unique}.notification.outcome.v1"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, "test", 3)])
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, redis_url="redis://unused",
                               leadpipe_state_dir=tmp_path)  # fmt: skip
    producer = make_producer(settings)
    await producer.start()
    try:
        publisher = KafkaPublisher(producer, metrics=StageMetrics("t", CollectorRegistry()),
                                   topic_for=lambda t: f"{unique}.{t}")  # fmt: skip
        await publisher.publish([_outcome(-1)])  # metadata and producer id fetched beforehand
        requests = _counting(producer)

        await _leads(publisher.publish, None)  # each lead's own publish
        own = requests["ProduceRequest"]
        acks = SharedAcks(publisher)
        await _leads(acks.publish, acks)  # the same leads sharing their acks
        shared = requests["ProduceRequest"] - own
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        await consumer.stop()
    assert sum(ends.values()) == 1 + 2 * LEADS  # every output of both runs is on the topic
    # Sharing their acks, the leads' outputs go in one request (the old SharedAcks sent 8 here).
    # On their own, one request per produce round trip over the 72 ms the leads take to get there:
    # 10-17 on a quiet machine, fewer the slower the broker answers, never as few.
    assert shared <= 2 and own > shared, (own, shared)
