"""The compacted scoring state topic (``scoring.state.v1``): Kafka's copy of every lead state.

Each batch appends the states it changed, keyed by lead id, and a tombstone for each lead
merged away, after its outputs are acknowledged and before its Redis write; the active model
version is kept under the key ``MODEL_KEY``. The latest record per key is the state, so
``rebuild`` reads the topic from the start to its end and puts Redis back (lead states, the
links they make, the active model).

Why a state topic rather than a replay of ``lead.captured`` and ``lead.engagement``: those
topics expire (14 days), a replay would have to re-run merges in the order they first happened
(across partitions of two topics: no such order exists on the log), and it is slower (a state
is one record; a lead's history is many events to re-score).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from leadpipe.runtime.kafka import ensure_topics, make_consumer, read_to_end, topic_partitions
from leadpipe.runtime.keystore import open_state, prepare_state_keys, seal_state
from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import TopicSpec, registry
from services.scoring.adapters.redis_store import RedisLeadStore, dump_state
from services.scoring.domain.lead import LeadState

log = logging.getLogger(__name__)

MODEL_KEY = b"\x00model"


def state_topic_spec(name: str, partitions: int) -> TopicSpec:
    """The registry's ``scoring.state.v1`` (what ``leadpipe topics apply`` creates) under ``name``."""
    return replace(registry(partitions)["scoring.state.v1"], name=name)


async def ensure_state_topic(settings: ServiceSettings, name: str) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [state_topic_spec(name, settings.kafka_partitions)])


class StateLog:
    """Appends lead states and tombstones; ``append`` returns once the broker acknowledged all."""

    def __init__(self, producer: Any, topic: str):
        self.producer = producer
        self.topic = topic

    async def append(
        self, states: Iterable[LeadState], deleted: Iterable[str] = (), *, model_version: str | None = None
    ) -> int:
        states = list(states)
        # privacy hook: each state sealed under its lead's data key (crypto-shredding), the keys
        # of the batch's leads cached first in one round trip (sealing then does not block)
        await prepare_state_keys(s.lead_id for s in states)
        acks = [await self.producer.send(self.topic, None, key=lead_id.encode()) for lead_id in deleted]
        acks += [
            await self.producer.send(self.topic, seal_state(s.lead_id, dump_state(s)), key=s.lead_id.encode())
            for s in states
        ]
        if model_version is not None:
            acks.append(await self.producer.send(self.topic, model_version.encode(), key=MODEL_KEY))
        for ack in acks:
            await ack
        return len(acks)


async def read_states(settings: ServiceSettings, topic: str) -> tuple[list[bytes], str | None]:
    """The latest state of every lead on the topic (tombstoned leads left out) and the model."""
    consumer: AIOKafkaConsumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        tps = (await topic_partitions(consumer, [topic]))[topic]

        async def keep_latest(records: list[ConsumerRecord[Any, Any]]) -> None:
            fold(latest, ((r.key, r.value) for r in records))

        await read_to_end(consumer, tps, keep_latest)
    finally:
        await consumer.stop()
    # privacy hook: a state whose lead was erased (data key destroyed) counts as a tombstone
    opened = {k: (open_state(v) if v is not None and k != MODEL_KEY else v) for k, v in latest.items()}
    return current(opened)


def fold(latest: dict[bytes, bytes | None], records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    """Keep the latest value per key, in topic order (a ``None`` value is a tombstone)."""
    for key, value in records:
        if key is not None:
            latest[key] = value


def current(latest: dict[bytes, bytes | None]) -> tuple[list[bytes], str | None]:
    """The live lead states (tombstoned leads left out) and the active model version."""
    model = latest.get(MODEL_KEY)
    states = [v for k, v in latest.items() if v is not None and k != MODEL_KEY]
    return states, model.decode() if model else None


async def rebuild(settings: ServiceSettings, topic: str, store: RedisLeadStore, log_: StateLog) -> int:
    """Puts every lead state on the topic back into Redis; returns how many were put back.

    An empty topic beside a Redis that holds leads is a deployment's first start with a state
    topic: the topic is seeded from Redis instead, so the next wipe loses nothing."""
    states, model = await read_states(settings, topic)
    if not states and await store.count_leads():
        seeded = 0
        async for chunk in store.all_leads():
            seeded += await log_.append(chunk)
        await log_.append([], model_version=await store.active_model())
        log.warning("the state topic %s was empty: seeded it with the %d leads in Redis", topic, seeded)
        return 0
    restored = await store.restore(states, model)
    log.info("rebuilt scoring state from %s: %d of %d leads restored (model %s)", topic, restored, len(states), model)
    return restored
