"""Read records from topics without joining a consumer group, and render them for people."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from leadpipe.ops import OpsError, UnknownTopic
from leadpipe.runtime.kafka import make_consumer, topic_partitions
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import Record, decode_record
from schemas.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Consumed:
    """A record read from a topic, with where it was."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    record: Record


def plain_consumer(settings: ServiceSettings, group_id: str | None = None) -> AIOKafkaConsumer:
    """A consumer that is only ever assigned partitions by hand (it never joins its group)."""
    return make_consumer(settings, group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest")


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions; ``UnknownTopic`` if the broker does not have it."""
    found = (await topic_partitions(consumer, [topic]))[topic]
    if not found:
        raise UnknownTopic(f"topic {topic!r}: not found on the broker (try `leadpipe topics apply`)")
    return found


async def read(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    *,
    follow: bool = False,
    max_records: int | None = None,
    idle_s: float = 0.5,
    timeout_s: float = 60.0,
) -> AsyncIterator[Consumed]:
    """Records from ``starts`` (partition -> offset) on.

    Without ``follow`` it stops once every partition reached the end offset the broker reported
    at the start *and* a poll of ``idle_s`` brought nothing more: the embedded broker reports a
    high watermark one past the last batch's *base* offset, so the end offset alone would stop
    short of records produced in one batch.
    """
    if max_records is not None and max_records <= 0:
        return
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    ends = await consumer.end_offsets(list(starts)) if starts else {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    count = 0
    while True:
        batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=500)
        if not batch:
            if follow:
                continue
            behind = [tp for tp in starts if await consumer.position(tp) < ends[tp]]
            if not behind:
                return
            if loop.time() > deadline:
                raise OpsError(f"reading stalled before the end of {sorted(str(tp) for tp in behind)}")
            continue
        for tp in sorted(batch, key=lambda t: (t.topic, t.partition)):
            for msg in batch[tp]:
                yield Consumed(
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    timestamp_ms=msg.timestamp,
                    record=Record(
                        key=msg.key or b"",
                        value=msg.value or b"",
                        headers=[(k, bytes(v)) for k, v in (msg.headers or ())],
                    ),
                )
                count += 1
                if max_records is not None and count >= max_records:
                    return


def _text(raw: bytes, limit: int = 2000) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


def dead_letter_info(record: Record) -> dict[str, str]:
    """The ``dlq_*`` headers of a dead-lettered record, without the prefix."""
    return {k.removeprefix("dlq_"): _text(v) for k, v in record.headers if k.startswith("dlq_")}


def render(item: Consumed) -> dict[str, Any]:
    """A record as a JSON-ready dict: the decoded event, or the decode error and the raw value."""
    record = item.record
    out: dict[str, Any] = {
        "topic": item.topic,
        "partition": item.partition,
        "offset": item.offset,
        "timestamp": (
            datetime.fromtimestamp(item.timestamp_ms / 1000, UTC).isoformat() if item.timestamp_ms is not None else None
        ),
        "key": _text(record.key),
    }
    dead = dead_letter_info(record)
    if dead:
        out["dead_letter"] = dead
    extra = {k: _text(v) for k, v in record.headers if not (k.startswith(("ce_", "dlq_")) or k == "content-type")}
    if extra:
        out["headers"] = extra
    try:
        out["event"] = decode_record(record).model_dump(mode="json")
    except DecodeError as exc:
        out["decode_error"] = {"field": exc.field, "problem": exc.problem, "message": str(exc)}
        out["value"] = _text(record.value)
    return out
