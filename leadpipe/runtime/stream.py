"""The error policy around every consuming handler: decode -> handle -> encode -> send.

Faust (and a plain consumer) acks a record even when the handler raised, so nothing may
escape this loop: an invalid record is dead-lettered with the reason in its headers,
counted and logged with its event id; a transient failure (Redis or broker unreachable)
is retried with backoff and never dropped.

Exceptions::

    HandlerError         a handler's own error for an event it cannot process (dead-lettered)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leadpipe.runtime.metrics import StageMetrics
from schemas.base import Payload
from schemas.codec import Headers, Record, decode, encode
from schemas.dlq import dead_letter
from schemas.envelope import Envelope
from schemas.errors import DecodeError, SchemaError
from schemas.pii import SubjectErased
from schemas.topics import dlq_name

log = logging.getLogger(__name__)

TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    ConnectionError,
    TimeoutError,
)


class HandlerError(Exception):
    """A handler cannot process this event; it goes to the dead-letter topic."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(slots=True)
class RawMessage:
    """A consumed record, independent of the client library that read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    @classmethod
    def from_kafka(cls, message: Any) -> RawMessage:
        """From a Faust message (``event.message``) or an aiokafka ``ConsumerRecord``."""
        headers = message.headers
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        return cls(message.topic, message.partition, message.offset, message.key, message.value, items)


async def raw_batches(stream: Any, max_records: int, within_s: float) -> AsyncIterator[list[RawMessage]]:
    """A Faust stream's records in batches: up to ``max_records``, or what arrived within ``within_s``."""
    async for events in stream.take_events(max_records, within=within_s):
        yield [RawMessage.from_kafka(e.message) for e in events]


class RecordSink(Protocol):
    """Where records go: a producer wrapper, or a list in tests."""

    async def send(self, topic: str, record: Record) -> None: ...


Handler = Callable[[Envelope[Any]], Awaitable[Sequence[Envelope[Any]]]]


class EventProcessor:
    """Runs one record through a handler under the pipeline's error policy."""

    def __init__(
        self,
        *,
        service: str,
        metrics: StageMetrics,
        sink: RecordSink,
        max_record_bytes: int = 1_000_000,
        retry_base_s: float = 0.2,
        retry_max_s: float = 5.0,
    ):
        self.service = service
        self.metrics = metrics
        self.sink = sink
        self.max_record_bytes = max_record_bytes
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s

    async def process(self, msg: RawMessage, expected: type[Payload] | None, handler: Handler) -> bool:
        """Handle one record; True if handled, False if dead-lettered."""
        started = time.perf_counter()
        self.metrics.consumed.labels(self.service, msg.topic).inc()
        try:
            event = decode(msg.value, msg.headers, expected)
        except SubjectErased:
            self.skip_erased(msg)
            return True
        except DecodeError as exc:
            await self.dead_letter(msg, exc, "invalid")
            return False
        delay = self.retry_base_s
        while True:
            try:
                outputs = await handler(event)
                records = [(out.data.topic(), encode(out, max_bytes=self.max_record_bytes)) for out in outputs]
                break
            except TRANSIENT as exc:
                self.metrics.retries.labels(self.service, msg.topic).inc()
                log.warning(
                    "transient failure, retrying in %.1fs: %s",
                    delay,
                    exc,
                    extra={"event_id": event.id, "lead_id": event.subject, "correlation_id": event.correlationid},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            except (HandlerError, SchemaError, ValueError) as exc:
                await self.dead_letter(msg, exc, "rejected", event)
                return False
            except Exception as exc:
                log.exception(
                    "handler failed", extra={"event_id": event.id, "lead_id": event.subject, "topic": msg.topic}
                )
                await self.dead_letter(msg, exc, "handler_error", event)
                return False
        for topic, record in records:
            await self._send_retrying(topic, record, msg.topic)
            self.metrics.published.labels(self.service, topic).inc()
        self.metrics.done(msg.topic, started, event.time.timestamp())
        return True

    async def _send_retrying(self, topic: str, record: Record, source_topic: str) -> None:
        delay = self.retry_base_s
        while True:
            try:
                await self.sink.send(topic, record)
                return
            except TRANSIENT as exc:
                self.metrics.retries.labels(self.service, source_topic).inc()
                log.warning("publish to %s failed, retrying: %s", topic, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    def skip_erased(self, msg: RawMessage) -> None:
        """A record of an erased person (privacy hook, ``schemas.pii``): nothing to do and nothing
        to keep; counted and logged by ids only (a dead letter would keep its ciphertext longer)."""
        self.metrics.erased_skipped.labels(self.service, msg.topic).inc()
        log.info(
            "skipped a record of an erased person from %s[%d]@%d",
            msg.topic,
            msg.partition,
            msg.offset,
            extra={"event_id": _header(msg.headers, "ce_id"), "lead_id": _header(msg.headers, "ce_subject")},
        )

    async def dead_letter(
        self, msg: RawMessage, exc: BaseException, reason: str, event: Envelope[Any] | None = None
    ) -> None:
        record = dead_letter(
            key=msg.key,
            value=msg.value,
            headers=msg.headers,
            error=exc,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            service=self.service,
        )
        await self._send_retrying(dlq_name(msg.topic), record, msg.topic)
        self.metrics.dead_lettered.labels(self.service, msg.topic, reason).inc()
        log.error(
            "dead-lettered record from %s[%d]@%d: %s",
            msg.topic,
            msg.partition,
            msg.offset,
            exc,
            extra={
                "event_id": event.id if event else _header(msg.headers, "ce_id"),
                "lead_id": event.subject if event else _header(msg.headers, "ce_subject"),
                "reason": reason,
            },
        )


def _header(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode(errors="replace")
    return None
