"""The pipeline bench counts the records written per lead by each topic's end offsets, read
before and after a phase. Against the session broker (other tests write to it too: only this
test's own topic is asserted on)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from bench.pipeline_bench import records_per_lead, topic_ends


async def ends_once_listed(bootstrap: str, topic: str, within_s: float = 15.0) -> dict[str, int]:
    """``topic_ends`` once the broker lists ``topic`` with a leader for each partition: a topic
    just created may be missing from the metadata, or have no leader yet, for a moment."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            ends = await topic_ends(bootstrap)
            if topic in ends:
                return ends
        except KafkaError:
            pass
        assert time.monotonic() < deadline, f"{topic} was not listed with its partitions' offsets within {within_s:g} s"
        await asyncio.sleep(0.2)


async def test_records_written_to_a_topic_across_its_partitions_are_counted_per_lead(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"written-{unique}.lead.stage_changed.v1"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    before = await ends_once_listed(kafka_bootstrap, topic)
    assert before[topic] == 0, f"a new topic has written nothing: {before[topic]!r}"
    assert not any(t.startswith("__") for t in before), "Kafka's own topics are not the pipeline's records"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(10):  # 10 records over the 3 partitions, as a phase of 4 leads might write
            await producer.send_and_wait(topic, b"x", partition=i % 3)
    finally:
        await producer.stop()
    after = await topic_ends(kafka_bootstrap)
    assert after[topic] == 10
    written = records_per_lead(before, after, leads=4)
    assert written["per_topic"][topic] == 2.5
    assert written["leads"] == 4
