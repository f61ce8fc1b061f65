"""The compacted state topic: Kafka's copy of every lead's nurture state (the source of truth).

Each successful state write is appended here keyed by lead id, so the latest record per lead
is its state. ``rebuild`` reads the topic from the start to its end and restores Redis (lead
states, the due index, the overflow queue, stage counts, the reps' capacity used per day): a lost
Redis loses no lead, no scheduled touch and no queued lead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from leadpipe.runtime.kafka import ensure_topics, make_consumer, read_to_end, topic_partitions
from leadpipe.runtime.keystore import open_state, seal_state
from leadpipe.runtime.retry import retry_transient
from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import TopicSpec
from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.domain.routing import QueueEntry
from services.nurture.domain.state import LeadState

log = logging.getLogger(__name__)


def state_topic_spec(name: str, partitions: int) -> TopicSpec:
    return TopicSpec(name=name, key="lead id", partitions=partitions, cleanup_policy="compact", retention_ms=-1)


class StateLog:
    """Appends are sent at once and acknowledged together by ``flush`` (the batch awaits it before
    its offsets are committed); a failed append is sent again until the broker takes it. One
    flush at a time: a batch's and the scheduler's may overlap, and a flush that found the other's
    appends already taken must not return before they are acknowledged."""

    def __init__(self, producer: Any, topic: str, retry_base_s: float = 0.2, retry_max_s: float = 5.0):
        self.producer = producer
        self.topic = topic
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self._pending: list[tuple[bytes, bytes | None, Any]] = []
        self._flushing = asyncio.Lock()

    async def append(self, state: LeadState) -> None:
        # privacy hook: the state sealed under its lead's data key (crypto-shredding)
        key, value = state.lead_id.encode(), seal_state(state.lead_id, state.model_dump_json().encode())
        await self._send(key, value)

    async def tombstone(self, lead_id: str) -> None:
        """A null value for the lead: compaction drops its earlier states from the topic."""
        await self._send(lead_id.encode(), None)

    async def _send(self, key: bytes, value: bytes | None) -> None:
        try:
            ack = await self.producer.send(self.topic, value, key=key)
        except Exception as exc:  # kept, and sent again by ``flush``
            ack = _failed(exc)
        self._pending.append((key, value, ack))

    async def flush(self) -> None:
        async with self._flushing:
            await retry_transient(self._flush_once, what=f"state append to {self.topic}", base_s=self.retry_base_s,
                                  max_s=self.retry_max_s, transient=(_NotAcked,))  # fmt: skip

    async def _flush_once(self) -> None:
        while self._pending:
            taken, self._pending = self._pending, []
            failed: dict[bytes, bytes | None] = {}
            error: BaseException | None = None
            for key, value, ack in taken:
                failed.pop(key, None)  # a lead's newer state supersedes an older failed one
                try:
                    await ack
                except Exception as exc:  # the send is repeated: a state is never dropped here
                    failed[key], error = value, exc
            if failed:
                newer = {key for key, _, _ in self._pending}
                for key, value in failed.items():
                    if key not in newer:  # else a newer state of that lead is on its way already
                        await self._send(key, value)
                raise _NotAcked(f"{len(failed)} state(s) not acknowledged: {error}")


class _NotAcked(Exception):
    """Some appends failed and were sent again: wait, then await them."""


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_exception(exc)
    return fut


async def ensure_state_topic(settings: ServiceSettings, name: str) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [state_topic_spec(name, settings.kafka_partitions)])


async def rebuild(
    settings: ServiceSettings,
    topic: str,
    store: RedisNurtureStore,
    next_due: Callable[[LeadState], datetime | None],
    queue_entry: Callable[[LeadState], QueueEntry | None],
) -> int:
    """Restores every lead state from the topic into Redis (newer versions win), with its due
    time and its place in an overflow queue. Returns how many states were restored."""
    consumer: AIOKafkaConsumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    try:
        tps = (await topic_partitions(consumer, [topic]))[topic]
        if not tps:
            return 0

        async def keep_latest(records: list[ConsumerRecord[Any, Any]]) -> None:
            for r in records:
                if r.key is None:
                    continue
                if r.value is None:  # a tombstone: the lead was erased
                    latest.pop(r.key, None)
                else:
                    latest[r.key] = r.value

        await read_to_end(consumer, tps, keep_latest)
    finally:
        await consumer.stop()
    restored = 0
    stages: dict[str, int] = {}
    # A rep's capacity used on a day is the leads whose current assignment holds a place that day
    # (declined and expired ones gave theirs back): without it a rebuilt queue would be served
    # at once, as if every rep had a free day.
    used: dict[tuple[str, str], int] = {}
    for sealed in latest.values():
        raw = open_state(sealed)  # privacy hook: None when the lead was erased (its key destroyed)
        if raw is None:
            continue
        state = LeadState.model_validate_json(raw)
        if await store.restore(raw, next_due(state), queue_entry(state)):
            restored += 1
        if not state.synthetic:
            stages[state.stage.value] = stages.get(state.stage.value, 0) + 1
        a = state.assignment
        if a is not None and a.capacity_day and a.status in ("pending", "accepted"):
            used[(a.rep_id, a.capacity_day)] = used.get((a.rep_id, a.capacity_day), 0) + 1
    await store.restore_capacity(used)
    if stages:
        await store.redis.delete(f"{store.prefix}stages")
        await store.redis.hset(f"{store.prefix}stages", mapping=stages)  # type: ignore[arg-type]
    log.info("rebuilt nurture state from %s: %d leads restored", topic, restored)
    return restored
