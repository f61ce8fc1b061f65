"""A caught-up consumer long-polls (KAFKA_FETCH_IDLE_WAIT_MS) at no latency cost, and a fetch that
leaves a partition out keeps the short wait (KAFKA_FETCH_MAX_WAIT_MS). Against the session broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from leadpipe.runtime.aiokafka_compat import FETCH_CONNECTIONS
from leadpipe.runtime.kafka import ensure_topics, make_consumer, read_to_end
from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import TopicSpec

SHORT_MS, LONG_MS = 100, 8_000


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        await asyncio.sleep(0.02)


def _settings(bootstrap: str, tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused", leadpipe_state_dir=tmp_path,
                           kafka_fetch_max_wait_ms=SHORT_MS, kafka_fetch_idle_wait_ms=LONG_MS)  # fmt: skip


async def test_a_caught_up_consumer_long_polls_yet_gets_a_record_at_once_and_a_partial_fetch_waits_short(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic = f"longpoll.{unique}.v1"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, "test", 2)])
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer = make_consumer(_settings(kafka_bootstrap, tmp_path), group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    await producer.start()
    waits: list[int] = []
    send = consumer._client.send

    async def recording(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, FetchRequest):
            waits.append(request._max_wait_ms)
        return await send(node_id, request, *args, **kwargs)

    consumer._client.send = recording  # type: ignore[method-assign]
    try:
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await asyncio.sleep(1.0)  # caught up: its fetch long-polls
        assert waits and waits[-1] == LONG_MS
        sent = time.monotonic()
        await producer.send_and_wait(topic, b"one", partition=0)
        got = await consumer.getmany(timeout_ms=5_000)
        assert sum(len(rs) for rs in got.values()) == 1
        assert time.monotonic() - sent < LONG_MS / 1000 / 2  # answered at once, not at the long poll's end

        # Records buffered on partition 0 (not consumed yet): the next fetch leaves it out.
        await producer.send_and_wait(topic, b"two", partition=0)
        await asyncio.sleep(1.0)
        seen = len(waits)
        await asyncio.sleep(1.0)
        assert SHORT_MS in waits[seen - 1 :]
    finally:
        await producer.stop()
        await consumer.stop()


async def test_a_partition_taken_over_in_a_rebalance_is_fetched_at_once_not_after_the_abandoned_long_poll(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """Member ``a`` long-polls while caught up; ``b`` leaves, ``a`` takes over ``b``'s partition.
    aiokafka abandons ``a``'s long poll, but Kafka answers a connection's requests in order: on
    the same connection the first fetch for the new partition would wait for the abandoned poll
    (measured: 7.0-7.7 s of 8). The poll's connection is dropped instead: ``a`` fetches on a new
    one, and the record sent to the taken-over partition arrives at once."""
    topic = f"longpoll.{unique}.v1"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, "test", 2)])
    settings = _settings(kafka_bootstrap, tmp_path)
    group = f"longpoll-{unique}"
    a = make_consumer(settings, topic, group_id=group)
    b = make_consumer(settings, topic, group_id=group)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    got: dict[bytes, tuple[int, float]] = {}  # value -> (partition, first arrival)

    async def poll(consumer: Any) -> None:
        while True:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    got.setdefault(record.value, (tp.partition, time.monotonic()))

    await producer.start()
    await a.start()
    await b.start()
    polls = [asyncio.create_task(poll(a)), asyncio.create_task(poll(b))]
    try:
        await _until(lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1, "a and b share the partitions")
        (taken_over,) = b.assignment()
        (kept,) = a.assignment()
        # A record on a's own partition ends a's long poll: the next one starts now, with LONG_MS to run.
        await producer.send_and_wait(topic, b"before", partition=kept.partition)
        await _until(lambda: b"before" in got, "a received the record on its own partition")
        await asyncio.sleep(0.2)
        (node,) = {a._client.cluster.leader_for_partition(tp) for tp in a.assignment()}
        before = a._client._conns[(node, FETCH_CONNECTIONS)]
        polls.pop().cancel()
        await b.stop()
        await _until(lambda: len(a.assignment()) == 2, "a took over b's partition")
        sent = time.monotonic()
        await producer.send_and_wait(topic, b"after", partition=taken_over.partition)
        while b"after" not in got:
            await asyncio.sleep(0.01)
            assert time.monotonic() - sent < LONG_MS / 1000 + 5, "the record never arrived"
        partition, arrived = got[b"after"]
        assert partition == taken_over.partition
        assert arrived - sent < LONG_MS / 1000 / 2, f"{arrived - sent:.2f} s: queued behind the abandoned long poll"
        assert a._client._conns[(node, FETCH_CONNECTIONS)] is not before  # the poll's connection went
    finally:
        for task in polls:
            task.cancel()
        await producer.stop()
        await a.stop()
        await b.stop()


async def test_a_long_poll_holds_up_none_of_the_consumers_other_requests(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """Kafka answers a connection's requests in order, so on the connection of a long poll an
    offsets request waited for the poll's end (a rebuild's ``read_to_end`` of an empty topic
    took the whole 8 s, the next one 5 s more). Fetches have their own connection: reading one
    topic to its end after another, and asking for end offsets while caught up, take no wait."""
    topics = [f"longpoll.{unique}.{name}.v1" for name in ("empty", "full")]
    await ensure_topics(kafka_bootstrap, [TopicSpec(t, "test", 2) for t in topics])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for partition in (0, 1):
            await producer.send_and_wait(topics[1], b"x", partition=partition)
    finally:
        await producer.stop()
    consumer = make_consumer(_settings(kafka_bootstrap, tmp_path), group_id=None)
    await consumer.start()
    read: list[Any] = []

    async def on_batch(records: list[Any]) -> None:
        read.extend(records)

    try:
        for topic in topics:
            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            started = time.monotonic()
            await read_to_end(consumer, tps, on_batch)
            assert time.monotonic() - started < LONG_MS / 1000 / 4, f"read_to_end({topic}) waited for a long poll"
        assert len(read) == 2
        await asyncio.sleep(1.0)  # caught up: a long poll is in flight
        started = time.monotonic()
        ends = await consumer.end_offsets(tps)
        assert time.monotonic() - started < LONG_MS / 1000 / 4, "end_offsets waited for the long poll"
        assert ends == {tp: 1 for tp in tps}
    finally:
        await consumer.stop()
