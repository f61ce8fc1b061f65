"""The pipeline bench counts the records written per lead by each topic's end offsets, read
before and after a phase. Against the session broker (other tests write to it too: only this
test's own topic is asserted on)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.pipeline_bench import records_per_lead, topic_ends


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
    before = await topic_ends(kafka_bootstrap)
    assert before.get(topic) == 0, f"a new topic has written nothing: {before.get(topic)!r}"
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
