"""aiokafka clients configured for our topics and codec, and topic provisioning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from leadpipe.runtime.aiokafka_compat import long_poll_when_caught_up
from leadpipe.runtime.retention import topic_config
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import Record, encode
from schemas.envelope import Envelope
from schemas.topics import TopicSpec, registry

log = logging.getLogger(__name__)


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "metadata_max_age_ms": settings.kafka_metadata_max_age_ms,
    }
    if settings.kafka_sasl_mechanism:
        opts |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    return opts


def make_producer(settings: ServiceSettings, **overrides: Any) -> AIOKafkaProducer:
    opts = client_options(settings) | {
        "acks": "all" if settings.kafka_acks == "all" else int(settings.kafka_acks),
        "enable_idempotence": settings.kafka_enable_idempotence and settings.kafka_acks == "all",
        "max_request_size": settings.kafka_max_record_bytes + 64_000,
        "linger_ms": settings.kafka_linger_ms,
    }
    return AIOKafkaProducer(**(opts | overrides))


def make_consumer(settings: ServiceSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    timeout_ms = int(settings.kafka_rebalance_timeout_s * 1000)
    opts = client_options(settings) | {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "rebalance_timeout_ms": timeout_ms,
        "max_poll_interval_ms": max(timeout_ms, 10_000),
        "session_timeout_ms": int(settings.kafka_session_timeout_s * 1000),
        "heartbeat_interval_ms": int(settings.kafka_heartbeat_interval_s * 1000),
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "consumer_timeout_ms": fetch_routine_poll_ms(settings),
    }
    consumer = AIOKafkaConsumer(*topics, **(opts | overrides))
    return long_poll_when_caught_up(consumer, settings.kafka_fetch_idle_wait_ms, sessions=settings.kafka_fetch_sessions)


def fetch_routine_poll_ms(settings: ServiceSettings) -> int:
    """aiokafka's fetch routine also wakes every ``consumer_timeout_ms`` (200 ms by default) to
    look over every assigned partition: five times a second per idle consumer. Everything it
    waits for (a fetch's answer, records consumed, a seek, a new assignment, a resume) wakes it
    anyway, and a fetch in flight answers within the longest fetch wait."""
    return max(settings.kafka_fetch_max_wait_ms, settings.kafka_fetch_idle_wait_ms)


async def send_record(producer: AIOKafkaProducer, topic: str, record: Record) -> Any:
    """Send and wait for the broker's ack (acks=all)."""
    return await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)


async def publish(producer: AIOKafkaProducer, event: Envelope[Any], *, max_bytes: int, topic: str | None = None) -> Any:
    """Encode and publish an event to its topic, waiting for the broker's ack."""
    record = encode(event, max_bytes=max_bytes)
    return await send_record(producer, topic or event.data.topic(), record)


def new_topic(
    name: str, partitions: int, replication_factor: int = -1, config: dict[str, str] | None = None
) -> NewTopic:
    """A topic to create; ``replication_factor=-1``: the cluster's ``default.replication.factor``
    (KIP-464), so one call serves a one-node dev broker and a three-node cluster alike."""
    # aiokafka's NewTopic refuses -1 unless replica assignments are given, even empty ones.
    assignments: dict[int, list[int]] | None = {} if replication_factor == -1 else None
    return NewTopic(name, partitions, replication_factor, replica_assignments=assignments, topic_configs=config or {})


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec] | None = None,
    *,
    replication_factor: int = -1,
    partitions: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the registry's topics that do not exist yet (idempotent). Returns created names.

    ``replication_factor=-1`` takes the cluster's ``default.replication.factor``."""
    topic_specs = list(specs if specs is not None else registry(partitions or 6).values())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in topic_specs if s.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                await admin.create_topics(
                    # privacy hook: the storage limits (leadpipe/runtime/retention.py)
                    [new_topic(spec.name, spec.partitions, replication_factor, topic_config(spec))]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        await _until_led(admin, [s.name for s in topic_specs], timeout_s)
        return created
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float) -> None:
    """Until every partition of ``topics`` has a leader in the metadata brokers serve: KRaft
    acknowledges a CreateTopics before every broker has the topic, and a client that asks too
    early is told it does not exist."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        waiting = [
            t["topic"]
            for t in described
            if t["error_code"] != 0 or not t["partitions"] or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout_s}s: {', '.join(waiting)}")
        await asyncio.sleep(0.1)


async def wait_for_broker(bootstrap_servers: str, timeout_s: float = 30.0, *, brokers: int = 1) -> None:
    """Until the cluster answers metadata requests and ``brokers`` brokers have registered."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            registered = len(cluster.get("brokers", []))
            if registered >= brokers:
                return
            last = RuntimeError(f"{registered} of {brokers} brokers registered")
            await asyncio.sleep(0.2)
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.2)
        finally:
            await admin.close()
    raise TimeoutError(f"broker at {bootstrap_servers} not reachable after {timeout_s}s: {last}")


async def topic_partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> dict[str, list[TopicPartition]]:
    """Each topic's partitions, asked of the cluster (an empty list for a topic it does not have).

    Not ``consumer.partitions_for_topic``: a consumer's metadata covers only the topics it has
    subscribed to or been assigned, so for any other topic it answers None, and a rebuild that
    trusted it would read nothing and report success."""
    cluster = await consumer._client.fetch_all_metadata()
    return {t: [TopicPartition(t, p) for p in sorted(cluster.partitions_for_topic(t) or ())] for t in topics}


async def read_to_end(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    on_batch: Callable[[list[ConsumerRecord[Any, Any]]], Awaitable[None]],
) -> None:
    """Every record of these partitions from their start to (at least) their end offsets now.

    Rebuilds read this way. Done is when the consumer's position reaches the end offset, not when
    a record at end - 1 arrives: on a compacted topic, or after a transaction's commit marker, the
    last offsets hold no record to hand on."""
    if not tps:
        return
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    end = await consumer.end_offsets(tps)
    pending = {tp for tp in tps if end[tp] > 0}
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for records in batch.values():
            if records:
                await on_batch(records)
        for tp in list(pending):
            if await consumer.position(tp) >= end[tp]:
                pending.discard(tp)
