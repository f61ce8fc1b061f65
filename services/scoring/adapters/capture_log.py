"""Captures read back from ``lead.captured`` by event id (``leadpipe scoring split`` of a lead
stored before leads kept their captures whole, or with more captures than a lead keeps)."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from leadpipe.runtime.kafka import make_consumer, read_to_end, topic_partitions
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import decode
from schemas.envelope import Envelope
from schemas.errors import DecodeError
from schemas.lead_captured.v1 import LeadCaptured

log = logging.getLogger(__name__)


async def find_captures(
    settings: ServiceSettings, topic: str, event_ids: set[str]
) -> dict[str, Envelope[LeadCaptured]]:
    """The captures on ``topic`` whose event id is one of ``event_ids`` (those still retained)."""
    found: dict[str, Envelope[LeadCaptured]] = {}
    if not event_ids:
        return found
    consumer: AIOKafkaConsumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = (await topic_partitions(consumer, [topic]))[topic]

        async def pick(records: list[ConsumerRecord[Any, Any]]) -> None:
            for r in records:
                headers = list(r.headers or ())
                # The id is a header: only the records asked for are decoded.
                if next((v for k, v in headers if k == "ce_id"), b"").decode() not in event_ids:
                    continue
                try:
                    event = decode(r.value, headers, LeadCaptured)
                except DecodeError as exc:  # dead-lettered when it first came: not a capture of the lead
                    log.warning("skipped an undecodable capture at %s/%d@%d: %s", r.topic, r.partition, r.offset, exc)
                    continue
                found.setdefault(event.id, event)

        await read_to_end(consumer, tps, pick)
    finally:
        await consumer.stop()
    return found
