"""Consumers fetch in incremental fetch sessions (KIP-227, ``KAFKA_FETCH_SESSIONS``), against the
session broker: after the first fetch, only the partitions whose offset moved are sent, every
record still arrives once and in order, a paused partition is left out of the session and comes
back, and a session the broker no longer holds is replaced without losing or repeating a record."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from leadpipe.runtime.aiokafka_compat import FetchSession, SessionFetch
from leadpipe.runtime.kafka import ensure_topics, make_consumer
from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import TopicSpec

PARTITIONS = 6


def _settings(bootstrap: str, tmp_path: Path, **extra: Any) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused", leadpipe_state_dir=tmp_path,
                           kafka_fetch_max_wait_ms=100, kafka_fetch_idle_wait_ms=2_000, **extra)  # fmt: skip


class Wire:
    """Every fetch the consumer's client sends (as sent, after the session made it smaller) and
    the top-level error of each answer."""

    def __init__(self, consumer: AIOKafkaConsumer):
        self.sent: list[FetchRequest] = []
        self.errors: list[int] = []
        send = consumer._client.send

        async def recording(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(request, FetchRequest):
                self.sent.append(request)
            response = await send(node_id, request, *args, **kwargs)
            if isinstance(request, FetchRequest):
                self.errors.append(getattr(response, "error_code", 0))
            return response

        consumer._client.send = recording  # type: ignore[method-assign]

    def partitions(self, request: FetchRequest) -> int:
        return sum(len(partitions) for _, partitions in request.topics)


async def _receive(consumer: AIOKafkaConsumer, got: dict[TopicPartition, list[bytes]], want: int,
                   timeout_s: float = 20.0) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while sum(len(v) for v in got.values()) < want:
        assert time.monotonic() < deadline, f"{sum(len(v) for v in got.values())} of {want} records arrived"
        for tp, records in (await consumer.getmany(timeout_ms=200)).items():
            got.setdefault(tp, []).extend(r.value for r in records)


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _running(
    bootstrap: str, tmp_path: Path, topics: list[str], **extra: Any
) -> AsyncIterator[tuple[AIOKafkaConsumer, Wire, AIOKafkaProducer]]:
    """A consumer assigned every partition of ``topics`` from their start, its fetches recorded,
    and a producer; both stopped afterwards."""
    await ensure_topics(bootstrap, [TopicSpec(t, "test", PARTITIONS) for t in topics])
    consumer = make_consumer(_settings(bootstrap, tmp_path, **extra), group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    try:
        await consumer.start()
        wire = Wire(consumer)
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        await producer.start()
        yield consumer, wire, producer
    finally:
        await producer.stop()
        await consumer.stop()


def _session(consumer: AIOKafkaConsumer) -> FetchSession:
    (session,) = consumer._fetcher._client.sessions.values()
    return session


async def test_after_the_first_fetch_only_partitions_with_news_are_sent_and_every_record_arrives_once_in_order(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topics = [f"fetchsession.{unique}.{name}.v1" for name in ("a", "b")]
    async with _running(kafka_bootstrap, tmp_path, topics) as (consumer, wire, producer):
        got: dict[TopicPartition, list[bytes]] = {}
        await _until(lambda: len(wire.sent) >= 2, "two fetches")
        first = wire.sent[0]
        assert isinstance(first, SessionFetch) and first.session_epoch == 0
        assert wire.partitions(first) == 2 * PARTITIONS  # a full fetch opens the session
        # Five rounds of one record to one partition each: a round's fetch lists that partition only.
        sent: dict[TopicPartition, list[bytes]] = {}
        for n in range(5):
            tp = TopicPartition(topics[n % 2], n % PARTITIONS)
            value = f"r{n}".encode()
            await producer.send_and_wait(tp.topic, value, partition=tp.partition)
            sent.setdefault(tp, []).append(value)
            await _receive(consumer, got, n + 1)
        # 40 more over every partition, sent together, some partitions getting several.
        for n in range(40):
            tp = TopicPartition(topics[n % 2], (n * 5) % PARTITIONS)
            value = f"s{n}".encode()
            await producer.send(tp.topic, value, partition=tp.partition)
            sent.setdefault(tp, []).append(value)
        await producer.flush()
        await _receive(consumer, got, 45)
        await asyncio.sleep(0.5)
        assert got == sent  # each record once, in each partition's order
        session = _session(consumer)
        assert session.id != 0 and session.epoch > 1
        later = wire.sent[1:]
        assert all(isinstance(r, SessionFetch) and r.session_id == session.id for r in later)
        assert [r.session_epoch for r in later] == list(range(1, len(later) + 1))
        assert max(wire.partitions(r) for r in later) < 2 * PARTITIONS
        # Without sessions each of these would list all twelve; a fetch after a single record lists one.
        assert sum(wire.partitions(r) for r in later) <= len(later) * PARTITIONS
        assert min(wire.partitions(r) for r in later) <= 1
        assert set(wire.errors) == {0}


async def test_a_paused_partition_is_forgotten_by_the_session_and_fetched_again_when_resumed(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic = f"fetchsession.{unique}.paused.v1"
    async with _running(kafka_bootstrap, tmp_path, [topic]) as (consumer, wire, producer):
        got: dict[TopicPartition, list[bytes]] = {}
        paused, other = TopicPartition(topic, 0), TopicPartition(topic, 1)
        await _until(lambda: _session(consumer).id != 0, "a session")
        consumer.pause(paused)
        await producer.send_and_wait(topic, b"held", partition=paused.partition)
        await producer.send_and_wait(topic, b"free", partition=other.partition)
        await _receive(consumer, got, 1)
        assert got == {other: [b"free"]}
        forgotten = [(t, p) for r in wire.sent if isinstance(r, SessionFetch) for t, ps in r.forgotten for p in ps]
        assert (topic, paused.partition) in forgotten
        await asyncio.sleep(0.5)
        assert paused not in got
        consumer.resume(paused)
        await _receive(consumer, got, 2)
        assert got == {other: [b"free"], paused: [b"held"]}


async def test_a_session_the_broker_no_longer_holds_is_replaced_losing_and_repeating_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic = f"fetchsession.{unique}.evicted.v1"
    async with _running(kafka_bootstrap, tmp_path, [topic]) as (consumer, wire, producer):
        got: dict[TopicPartition, list[bytes]] = {}
        await producer.send_and_wait(topic, b"one", partition=2)
        await _receive(consumer, got, 1)
        session = _session(consumer)
        await _until(lambda: session.epoch > 1, "an incremental fetch")
        old = session.id
        # As if the broker had evicted it: an id it never gave out. The fetch in flight (sent
        # with the real id) is answered by the next record; the one after carries the forged id.
        session.id = old ^ 0x5A5A5A
        await producer.send_and_wait(topic, b"two", partition=2)
        await _receive(consumer, got, 2)
        await producer.send_and_wait(topic, b"three", partition=4)
        await _receive(consumer, got, 3)
        await asyncio.sleep(0.5)
        assert got == {TopicPartition(topic, 2): [b"one", b"two"], TopicPartition(topic, 4): [b"three"]}
        assert 70 in wire.errors  # FETCH_SESSION_ID_NOT_FOUND
        assert session.id not in (0, old ^ 0x5A5A5A)  # a new session, opened by a full fetch


async def test_with_sessions_off_every_fetch_lists_every_partition(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic = f"fetchsession.{unique}.off.v1"
    async with _running(kafka_bootstrap, tmp_path, [topic], kafka_fetch_sessions=False) as (consumer, wire, producer):
        got: dict[TopicPartition, list[bytes]] = {}
        for n in range(3):
            await producer.send_and_wait(topic, f"r{n}".encode(), partition=n)
            await _receive(consumer, got, n + 1)
        assert len(wire.sent) >= 3
        assert all(type(r) is FetchRequest and wire.partitions(r) == PARTITIONS for r in wire.sent)
        assert consumer._fetcher._client.sessions == {}
