"""Dead-letter topics: what is in them, why, and replaying them once the cause is fixed.

Replay re-publishes each dead-lettered record as it originally was (``schemas.dlq.original``)
to its original topic. How far each dead-letter partition was replayed is the committed
offset of the consumer group ``leadpipe-dlq-replay`` (``DLQ_REPLAY_GROUP``), committed after
every record: a second replay starts where the first stopped, so nothing is published twice
(a crash between publish and commit can repeat that one record; handlers are idempotent on
the event id).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from leadpipe.ops.reader import partitions as partitions_of
from leadpipe.ops.reader import plain_consumer, read, render
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.kafka import make_producer, send_record
from schemas.codec import Record
from schemas.dlq import original
from schemas.topics import TOPICS, TopicSpec

#: Added to every replayed record: which dead-letter record it came from.
REPLAYED_FROM_HEADER = "leadpipe_replayed_from"


def dlq_specs() -> list[TopicSpec]:
    return sorted((s for s in TOPICS.values() if s.dead_letter_of), key=lambda s: s.name)


def resolve(name: str) -> TopicSpec:
    """The dead-letter topic for ``name``, given as the DLQ itself or as the topic it serves."""
    for spec in dlq_specs():
        if name in (spec.name, spec.dead_letter_of):
            return spec
    # A dead-letter topic outside the registry (a retry topic's, or a test's) follows the same naming.
    dlq = name if name.endswith(".dlq") else f"{name}.dlq"
    return TopicSpec(name=dlq, key="same as the original record", partitions=1, dead_letter_of=dlq.removesuffix(".dlq"))


def reason_of(record: Record) -> str:
    """A short, label-free reason: which service failed and with what kind of error."""

    def h(name: str) -> str | None:
        raw = record.header(name)
        return raw.decode("utf-8", errors="replace") if raw is not None else None

    text = f"{h('dlq_service') or '?'}: {h('dlq_error_type') or '?'}"
    where = h("dlq_error_field")
    return f"{text} at {where}" if where else text


@dataclass
class DlqSummary:
    topic: str
    origin: str
    records: int = 0
    pending: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_failed_at: str | None = None

    @property
    def replayed(self) -> int:
        return self.records - self.pending

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "origin": self.origin,
            "records": self.records,
            "replayed": self.replayed,
            "pending": self.pending,
            "reasons": dict(self.reasons.most_common()),
            "last_error": self.last_error,
            "last_failed_at": self.last_failed_at,
        }


async def _replay_marks(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Where replay stands per partition: the replay group's committed offset, else the log start."""
    begins = await consumer.beginning_offsets(tps)
    marks: dict[TopicPartition, int] = {}
    for tp in tps:
        committed = await consumer.committed(tp)
        marks[tp] = max(committed, begins[tp]) if committed is not None else begins[tp]
    return marks


async def summarize(settings: OpsSettings, names: list[str] | None = None) -> list[DlqSummary]:
    """Every dead-letter topic (or those named): record count, replay progress and reasons."""
    specs = [resolve(n) for n in names] if names else dlq_specs()
    consumer = plain_consumer(settings, group_id=settings.dlq_replay_group)
    await consumer.start()
    try:
        out = []
        for spec in specs:
            assert spec.dead_letter_of is not None
            summary = DlqSummary(spec.name, spec.dead_letter_of)
            tps = await partitions_of(consumer, spec.name)
            marks = await _replay_marks(consumer, tps)
            begins = await consumer.beginning_offsets(tps)
            async for item in read(consumer, dict(begins)):
                summary.records += 1
                if item.offset >= marks[TopicPartition(item.topic, item.partition)]:
                    summary.pending += 1
                summary.reasons[reason_of(item.record)] += 1
                err = item.record.header("dlq_error")
                summary.last_error = err.decode("utf-8", errors="replace")[:300] if err else None
                at = item.record.header("dlq_failed_at")
                summary.last_failed_at = at.decode() if at else None
            out.append(summary)
        return out
    finally:
        await consumer.stop()


async def show(
    settings: OpsSettings, name: str, *, max_records: int = 20, pending_only: bool = False
) -> list[dict[str, Any]]:
    """The dead-lettered records of one topic, decoded, each with its error."""
    spec = resolve(name)
    consumer = plain_consumer(settings, group_id=settings.dlq_replay_group)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, spec.name)
        marks = await _replay_marks(consumer, tps)
        starts = marks if pending_only else await consumer.beginning_offsets(tps)
        out = []
        async for item in read(consumer, dict(starts), max_records=max_records):
            shown = render(item)
            shown["replayed"] = item.offset < marks[TopicPartition(item.topic, item.partition)]
            out.append(shown)
        return out
    finally:
        await consumer.stop()


@dataclass
class ReplayResult:
    topic: str
    origin: str
    replayed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "origin": self.origin,
            "replayed": self.replayed,
            "skipped": self.skipped,
            "problems": self.problems,
        }


async def replay(
    settings: OpsSettings,
    names: list[str] | None = None,
    *,
    dry_run: bool = False,
    max_records: int | None = None,
) -> list[ReplayResult]:
    """Re-publish every not-yet-replayed dead letter to its original topic, once.

    A record that is not a dead letter of this topic (no or another ``dlq_topic`` header) is
    skipped, reported and marked done; it stays in the dead-letter topic for inspection.
    """
    specs = [resolve(n) for n in names] if names else dlq_specs()
    consumer = plain_consumer(settings, group_id=settings.dlq_replay_group)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        results: list[ReplayResult] = []
        for spec in specs:
            assert spec.dead_letter_of is not None
            result = ReplayResult(spec.name, spec.dead_letter_of)
            tps = await partitions_of(consumer, spec.name)
            marks = await _replay_marks(consumer, tps)
            remaining = None if max_records is None else max_records - sum(r.replayed for r in results)
            async for item in read(consumer, marks, max_records=remaining):
                tp = TopicPartition(item.topic, item.partition)
                where = f"{item.topic}[{item.partition}]@{item.offset}"
                try:
                    topic, record = original(item.record)
                    if topic != spec.dead_letter_of:
                        raise ValueError(
                            f"header dlq_topic names {topic!r}, but this is the DLQ of {spec.dead_letter_of!r}"
                        )
                except ValueError as exc:
                    result.skipped += 1
                    result.problems.append(f"{where}: skipped: {exc}")
                else:
                    if not dry_run:
                        record = Record(
                            record.key, record.value, [*record.headers, (REPLAYED_FROM_HEADER, where.encode())]
                        )
                        await send_record(producer, topic, record)
                    result.replayed += 1
                if not dry_run:
                    stamp = f"replayed {datetime.now(UTC).isoformat()}"
                    await consumer.commit({tp: OffsetAndMetadata(item.offset + 1, stamp)})
            results.append(result)
        return results
    finally:
        await producer.stop()
        await consumer.stop()
