"""Helpers for the ops tests: unique topics on the session broker, producing, reading back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from leadpipe.cli import main
from leadpipe.ops.reader import plain_consumer, read
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.kafka import ensure_topics, send_record, topic_partitions
from schemas.codec import Record
from schemas.topics import TopicSpec


def make_topics(bootstrap: str, origin: str, partitions: int = 3) -> None:
    specs = [
        TopicSpec(name=origin, key="lead id", partitions=partitions),
        TopicSpec(name=f"{origin}.dlq", key="same", partitions=1, dead_letter_of=origin),
    ]
    asyncio.run(ensure_topics(bootstrap, specs))


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for record in records:  # one by one: the embedded broker's end offset counts batches
                await send_record(producer, topic, record)
        finally:
            await producer.stop()

    asyncio.run(go())


def read_all(bootstrap: str, topic: str) -> list[Record]:
    async def go() -> list[Record]:
        consumer = plain_consumer(OpsSettings(kafka_bootstrap_servers=bootstrap))
        await consumer.start()
        try:
            tps = (await topic_partitions(consumer, [topic]))[topic]
            starts = await consumer.beginning_offsets(tps)
            return [item.record async for item in read(consumer, dict(starts))]
        finally:
            await consumer.stop()

    return asyncio.run(go())


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)
