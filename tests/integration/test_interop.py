"""Our records, read off the broker by tools we do not own: the official CloudEvents SDK's
Kafka binding and kcat."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from aiokafka.admin import AIOKafkaAdminClient
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from leadpipe.runtime.kafka import make_consumer, make_producer, new_topic, publish
from leadpipe.runtime.settings import ServiceSettings
from tests.infra import Broker
from tests.samples import events
from tests.support.tools import require_tool


async def _published_topic(bootstrap: str, unique: str) -> str:
    topic = f"interop.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([new_topic(topic, 1)])
    finally:
        await admin.close()
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused")
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in events():
            await publish(producer, event, max_bytes=1_000_000, topic=topic)
    finally:
        await producer.stop()
    return topic


async def test_the_cloudevents_sdk_kafka_binding_reads_our_records(kafka_bootstrap: str, unique: str):
    topic = await _published_topic(kafka_bootstrap, unique)
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, redis_url="redis://unused")
    consumer = make_consumer(settings, topic, group_id=None)
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + 20
        while len(records) < len(events()) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    assert len(records) == len(events())
    for record, ours in zip(records, events(), strict=True):
        ce = from_binary(KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value), JSONFormat())
        assert ce.get_id() == ours.id
        assert ce.get_type() == ours.type
        assert ce.get_source() == ours.source
        assert ce.get_subject() == ours.subject
        assert ce.get_dataschema() == ours.dataschema
        assert ce.get_time() == ours.time
        assert ce.get_extension("correlationid") == ours.correlationid
        assert ce.get_extension("partitionkey") == ours.subject
        assert ce.get_data() == json.loads(ours.data.model_dump_json())


async def _kcat(kcat: str, bootstrap: str, topic: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        kcat,
        "-b",
        bootstrap,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%k\t%h\t%s\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_kcat_reads_our_records_with_their_headers(kafka: Broker, unique: str):
    kcat = require_tool("kcat", "kcat")
    topic = await _published_topic(kafka.bootstrap, unique)
    out = await _kcat(kcat, kafka.bootstrap, topic)
    lines = [line for line in out.splitlines() if line]
    assert len(lines) == len(events())
    for line, ours in zip(lines, events(), strict=True):
        key, headers, value = line.split("\t")
        assert key == ours.subject
        assert f"ce_id={ours.id}" in headers
        assert f"ce_type={ours.type}" in headers
        assert "content-type=application/json" in headers
        assert json.loads(value) == json.loads(ours.data.model_dump_json())
