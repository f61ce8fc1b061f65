"""Rebuilds the notifier's Redis keyspace from Kafka, the source of truth.

- the delivery ledger from ``notification.outcome``: every outcome's notification id gets its
  terminal state back (``published``), so a re-requested id is answered from the ledger and not
  sent again;
- the suppression list from ``lead.engagement``: every unsubscribe, complaint and hard bounce;
- the erased list from the notifier's own ``person.erased`` receipts (keyed hashes only).

Both topics are read from their start to the end offsets taken when the rebuild begins; later
records are the live agents' business. A record that does not decode is skipped (counted and
logged): the live agent dead-lettered it when it first came.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from leadpipe.runtime.kafka import make_consumer, read_to_end, topic_partitions
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import Record, decode
from schemas.errors import DecodeError
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.person_erased.v1 import PersonErased
from services.notifier.adapters.redis_ledger import RedisLedger
from services.notifier.adapters.redis_state import RedisErasedList, RedisSuppressionList
from services.notifier.domain.suppression import suppressions_for

log = logging.getLogger(__name__)


@dataclass
class Rebuilt:
    outcomes: int = 0
    restored: int = 0
    suppressions: int = 0
    erased: int = 0
    skipped: int = 0


def _record(r: ConsumerRecord[Any, Any]) -> Record:
    return Record(key=r.key or b"", value=r.value or b"", headers=list(r.headers or ()))


async def partitions(consumer: AIOKafkaConsumer, *topics: str) -> dict[str, list[TopicPartition]]:
    """Each topic's partitions, asked before any ``assign`` (which narrows the metadata kept to
    the assigned topics)."""
    return await topic_partitions(consumer, topics)


async def rebuild(
    settings: ServiceSettings,
    ledger: RedisLedger,
    suppression: RedisSuppressionList,
    *,
    outcome_topic: str,
    engagement_topic: str,
    erased: RedisErasedList | None = None,
    erased_topic: str = "person.erased.v1",
) -> Rebuilt:
    done = Rebuilt()

    async def receipts(records: list[ConsumerRecord[Any, Any]]) -> None:
        assert erased is not None
        for r in records:
            rec = _record(r)
            try:
                data: PersonErased = decode(rec.value, rec.headers, PersonErased).data
            except DecodeError as exc:
                done.skipped += 1
                log.warning("rebuild skipped a receipt at %s/%d@%d: %s", r.topic, r.partition, r.offset, exc)
                continue
            if data.service == "notifier" and data.suppressed_hashes:
                done.erased += await erased.add(data.suppressed_hashes, data.erased_at)

    async def outcomes(records: list[ConsumerRecord[Any, Any]]) -> None:
        entries = []
        for r in records:
            rec = _record(r)
            try:
                data: NotificationOutcome = decode(rec.value, rec.headers, NotificationOutcome).data
            except DecodeError as exc:
                done.skipped += 1
                log.warning("rebuild skipped an outcome at %s/%d@%d: %s", r.topic, r.partition, r.offset, exc)
                continue
            entries.append((data.notification_id, data.status, data.attempts, rec))
        done.outcomes += len(entries)
        done.restored += await ledger.restore_many(entries)

    async def engagements(records: list[ConsumerRecord[Any, Any]]) -> None:
        pipe = suppression.redis.pipeline(transaction=False)
        for r in records:
            rec = _record(r)
            try:
                event = decode(rec.value, rec.headers, LeadEngagement)
            except DecodeError as exc:
                done.skipped += 1
                log.warning("rebuild skipped an engagement at %s/%d@%d: %s", r.topic, r.partition, r.offset, exc)
                continue
            data: LeadEngagement = event.data
            if event.synthetic:
                continue
            for entry in suppressions_for(kind=data.kind.value, channel=data.channel.value,
                                          bounce_type=data.bounce_type, email=data.identity.email,
                                          phone=data.identity.phone):  # fmt: skip
                pipe.set(suppression.key(entry.channel, entry.address), entry.reason)
                done.suppressions += 1
        await pipe.execute()

    consumer: AIOKafkaConsumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions(consumer, engagement_topic, outcome_topic, erased_topic)
        if erased is not None:
            await read_to_end(consumer, tps[erased_topic], receipts)
        await read_to_end(consumer, tps[engagement_topic], engagements)
        await read_to_end(consumer, tps[outcome_topic], outcomes)
    finally:
        await consumer.stop()
    log.info("rebuilt notifier state: %d outcomes read (%d restored), %d suppressions, %d erased addresses,"
             " %d records skipped", done.outcomes, done.restored, done.suppressions, done.erased,
             done.skipped)  # fmt: skip
    return done
