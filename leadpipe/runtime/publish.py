"""The one way a consumer service produces: handlers publish through the ``Publisher`` port.

``KafkaPublisher`` implements it over the service's one aiokafka producer (made by
``leadpipe.runtime.kafka.make_producer`` in the service's bootstrap); tests use a fake that
implements the same Protocol (``tests/fakes.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.retry import retry_transient
from schemas.codec import Record, encode
from schemas.envelope import Envelope


class Publisher(Protocol):
    """Port: where handlers put the events they decided on."""

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        """Sends the events to their topics; returns once the broker acknowledged all of them."""

    async def send(self, events: Sequence[Envelope[Any]]) -> None:
        """Sends the events without waiting: they are acknowledged by the next ``flush``."""

    async def publish_record(self, topic: str, record: Record) -> None:
        """Sends an encoded record (a retry, a stored outcome, a dead letter) and waits for its
        ack; a transient failure is retried until the broker takes it."""

    async def flush(self) -> None:
        """Returns once everything ``send`` sent so far is acknowledged (the runtime calls it
        before a record's or a batch's offsets are acknowledged)."""


class KafkaPublisher:
    """``Publisher`` over an aiokafka producer; counts ``leadpipe_events_published_total``."""

    def __init__(
        self,
        producer: Any,
        *,
        metrics: StageMetrics,
        max_record_bytes: int = 1_000_000,
        topic_for: Callable[[str], str] = str,
        retry_base_s: float = 0.2,
        retry_max_s: float = 5.0,
    ):
        self.producer = producer
        self.metrics = metrics
        self.max_record_bytes = max_record_bytes
        self.topic_for = topic_for
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self._pending: list[tuple[str, Awaitable[Any]]] = []

    async def _send_nowait(self, events: Sequence[Envelope[Any]]) -> list[tuple[str, Awaitable[Any]]]:
        acks = []
        for event in events:
            topic = self.topic_for(event.data.topic())
            record = encode(event, max_bytes=self.max_record_bytes)
            acks.append((topic, await self.producer.send(topic, record.value, key=record.key, headers=record.headers)))
        return acks

    async def _await(self, acks: list[tuple[str, Awaitable[Any]]]) -> None:
        for _, ack in acks:
            await ack
        # Metric children looked up once per topic and call, not per record.
        for topic, n in Counter(topic for topic, _ in acks).items():
            self.metrics.published.labels(self.metrics.service, topic).inc(n)

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        await self._await(await self._send_nowait(events))

    async def send(self, events: Sequence[Envelope[Any]]) -> None:
        self._pending += await self._send_nowait(events)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await self._await(pending)

    async def publish_record(self, topic: str, record: Record) -> None:
        async def once() -> Any:
            return await self.producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)

        await retry_transient(once, what=f"publish to {topic}", base_s=self.retry_base_s, max_s=self.retry_max_s)
        self.metrics.published.labels(self.metrics.service, topic).inc()
