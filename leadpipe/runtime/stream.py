"""The one consume runtime: the error policy around every consuming handler, per record or per batch.

The handler contract (the same in scoring, nurture and the notifier)
---------------------------------------------------------------------
A handler is ``async (event) -> None``. It publishes what it decides through the one injected
``leadpipe.runtime.publish.Publisher`` port (``publish`` waits for the acks, ``send`` leaves them
to ``flush``); the runtime flushes the publisher before it returns, and the agent acknowledges
a record's (or a batch's) offsets only after that: outputs are acked before offsets commit. A
handler that must order a write after its outputs (nurture's compare-and-set, the notifier's
ledger) calls ``publish`` itself at that point. Redelivery is normal (at-least-once): handlers
are idempotent by event id.

The error policy, written once
------------------------------
Faust (and a plain consumer) acks a record even when the handler raised, so nothing escapes:

- ``decode`` fails -> dead-lettered as ``invalid`` (the reason in the record's headers);
- the handler refuses (``HandlerError``, ``SchemaError``, ``ValueError``) -> ``rejected``;
- any other handler exception -> ``handler_error`` (logged with its traceback);
- a transient failure (Redis or the broker unreachable: ``retry.TRANSIENT``) -> retried with
  backoff (``retry.retry_transient``), never dropped;
- every outcome is counted (``StageMetrics``) and logged with the event id.

Modes
-----
``EventProcessor.process``: one record. ``BatchProcessor.process``: a batch (``raw_batches``)
through a ``BatchHandler``: ``begin`` reads the batch's state in one round trip, events run
through ``handle`` in partition order per ``key`` with different keys concurrently (at most
``concurrency``), then the publisher is flushed and ``commit`` writes the batch's state.
``BatchConflict`` (another worker changed the state) or, with ``retry="batch"``, a transient
failure re-runs the whole batch after ``abandon``.

Data keys (crypto-shredding)
----------------------------
Before decoding, the keys of the sealed fields in the records (a batch's, or the one record's)
that the keyring has not cached are fetched in one async round trip (``prefetch_records``), so
the synchronous codec does not block the loop on the key store. A batch processor given
``seal_refs`` also prepares, after decoding, the keys its handler will seal with (nurture: its
leads' state). Both are best effort: what is not cached is asked for by the codec as before.

Parking
-------
A handler raises ``NotYet`` for an event that refers to something not seen yet (nurture: an
outcome for a lead whose state is still on another partition after a partition healed). With a
``park_topic``, the record goes there with a due time (doubling from ``park_base_s``) and a
deadline (``park_for_s`` after it was first parked); the service's park agent (``agents.park_agent``)
runs it through the same handler when due. Past the deadline it is dead-lettered as
``not_yet``, naming what was missing. Without a park topic ``NotYet`` is dead-lettered at once.

Exceptions::

    HandlerError         a handler's own error for an event it cannot process (dead-lettered)
    └── NotYet           ...cannot process *yet*: parked, retried, dead-lettered past a deadline
    BatchConflict        the batch's state changed under it: run the batch again
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from leadpipe.runtime.keystore import prefetch_records, prepare_keys
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import Publisher
from leadpipe.runtime.retry import TRANSIENT, retry_transient
from schemas.base import Payload
from schemas.codec import Headers, Record, decode
from schemas.dlq import dead_letter
from schemas.envelope import Envelope
from schemas.errors import DecodeError, SchemaError
from schemas.pii import SubjectErased
from schemas.topics import dlq_name

__all__ = [
    "TRANSIENT",
    "BatchConflict",
    "BatchHandler",
    "BatchProcessor",
    "EventProcessor",
    "Handler",
    "HandlerError",
    "NotYet",
    "RawMessage",
    "raw_batches",
]

log = logging.getLogger(__name__)


class HandlerError(Exception):
    """A handler cannot process this event; it goes to the dead-letter topic."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotYet(HandlerError):
    """The event refers to something this service has not seen yet: park it and try again later."""


#: Headers of a parked record (the rest are the consumed record's own).
PARKED_TOPIC, PARKED_DUE, PARKED_DEADLINE, PARKED_ATTEMPT = (
    "leadpipe_parked_topic", "leadpipe_parked_due", "leadpipe_parked_deadline", "leadpipe_parked_attempt",
)  # fmt: skip


def parked_due(msg: RawMessage) -> float:
    """When a parked record is due again (0: now)."""
    return _float_header(msg.headers, PARKED_DUE)


def unparked(msg: RawMessage) -> RawMessage:
    """A parked record as it was consumed from its original topic (its park headers kept)."""
    topic = _header(msg.headers, PARKED_TOPIC) or msg.topic
    return RawMessage(topic, msg.partition, msg.offset, msg.key, msg.value, msg.headers)


class BatchConflict(Exception):
    """The batch's state changed under it (another worker wrote first): run the batch again."""


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


async def raw_records(stream: Any) -> AsyncIterator[RawMessage]:
    """A Faust stream's records one at a time."""
    async for event in stream.events():
        yield RawMessage.from_kafka(event.message)


async def raw_batches(batches: AsyncIterable[Sequence[Any]]) -> AsyncIterator[list[RawMessage]]:
    """Batches of Faust events (``faust_compat.take_batches``) as batches of records."""
    async for events in batches:
        yield [RawMessage.from_kafka(e.message) for e in events]


Handler = Callable[[Envelope[Any]], Awaitable[object]]

#: A batch's decoded events -> the refs its handler will seal under: (refs whose keys are created
#: when absent, refs whose keys are only read if they exist). See ``BatchProcessor``.
SealRefs = Callable[[Sequence[Envelope[Any]]], tuple[Iterable[str], Iterable[str]]]


class EventProcessor:
    """Runs records through handlers under the pipeline's error policy (one per service)."""

    def __init__(
        self,
        *,
        service: str,
        metrics: StageMetrics,
        publisher: Publisher,
        retry_base_s: float = 0.2,
        retry_max_s: float = 5.0,
        park_topic: str | None = None,
        park_for_s: float = 300.0,
        park_base_s: float = 1.0,
        park_max_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self.service = service
        self.metrics = metrics
        self.publisher = publisher
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.park_topic = park_topic
        self.park_for_s, self.park_base_s, self.park_max_s = park_for_s, park_base_s, park_max_s
        self.clock = clock

    async def decode(self, msg: RawMessage, expected: type[Payload] | None) -> Envelope[Any]:
        """The one place a consumed record becomes an event (``DecodeError`` when it cannot).
        Opening personal fields asks the key store: while it is unreachable (Redis restarting)
        decoding is retried like any transient failure, never let out of the agent."""

        async def once() -> Envelope[Any]:
            return decode(msg.value, msg.headers, expected)

        return await retry_transient(once, what=f"decoding a record of {msg.topic}", base_s=self.retry_base_s,
                                     max_s=self.retry_max_s,
                                     on_retry=lambda _: self.metrics.retries.labels(self.service, msg.topic).inc())  # fmt: skip

    async def process(self, msg: RawMessage, expected: type[Payload] | None, handler: Handler) -> bool:
        """Handle one record; True if handled, False if dead-lettered. Returns after the
        handler's outputs are acknowledged."""
        started = time.perf_counter()
        self.metrics.consumed.labels(self.service, msg.topic).inc()
        await prefetch_records([msg.value])
        try:
            event = await self.decode(msg, expected)
        except SubjectErased:
            self.skip_erased(msg)
            return True
        except DecodeError as exc:
            await self.dead_letter(msg, exc, "invalid")
            return False
        if not await self.run(msg, event, handler):
            return False
        # A failed ack is re-sent by whoever sent it (a batch re-runs); here only wait again.
        await retry_transient(self.publisher.flush, what="waiting for outputs", base_s=self.retry_base_s,
                              max_s=self.retry_max_s)  # fmt: skip
        self.metrics.done(msg.topic, started, event.time.timestamp())
        return True

    async def run(
        self,
        msg: RawMessage,
        event: Envelope[Any],
        handler: Handler,
        *,
        retry: bool = True,
        on_retry: Callable[[BaseException], object] | None = None,
    ) -> bool:
        """The per-event policy: True if handled, False if dead-lettered. ``retry=False`` leaves a
        transient failure to the caller (a batch that re-runs as a whole)."""

        def retried(exc: BaseException) -> None:
            self.metrics.retries.labels(self.service, msg.topic).inc()
            if on_retry is not None:
                on_retry(exc)

        try:
            if retry:
                extra = {"event_id": event.id, "lead_id": event.subject, "correlation_id": event.correlationid}
                await retry_transient(lambda: handler(event), what=f"handling {event.type}", on_retry=retried,
                                      base_s=self.retry_base_s, max_s=self.retry_max_s, extra=extra)  # fmt: skip
            else:
                await handler(event)
        except TRANSIENT:
            raise
        except NotYet as exc:
            await self.park(msg, exc, event)
            return False
        except (HandlerError, SchemaError, ValueError) as exc:
            await self.dead_letter(msg, exc, "rejected", event)
            return False
        except Exception as exc:
            log.exception("handler failed", extra={"event_id": event.id, "lead_id": event.subject, "topic": msg.topic})
            await self.dead_letter(msg, exc, "handler_error", event)
            return False
        return True

    async def park(self, msg: RawMessage, exc: NotYet, event: Envelope[Any]) -> None:
        """Sends the record to the park topic, due again after a backoff; dead-letters it (``not_yet``)
        once its deadline passed, or at once when this service has no park topic."""
        now = self.clock()
        attempt = int(_float_header(msg.headers, PARKED_ATTEMPT)) + 1
        deadline = _float_header(msg.headers, PARKED_DEADLINE) or now + self.park_for_s
        own = [(k, v) for k, v in msg.headers if not k.startswith("leadpipe_parked_")]
        if self.park_topic is None or now >= deadline:
            waited = f" (still so after {attempt - 1} retries over {self.park_for_s:.0f}s)" if attempt > 1 else ""
            await self.dead_letter(msg, f"{exc}{waited}", "not_yet", event, headers=own)
            return
        due = now + min(self.park_base_s * 2 ** (attempt - 1), self.park_max_s)
        headers = [
            *own,
            (PARKED_TOPIC, msg.topic.encode()), (PARKED_DUE, f"{due:.3f}".encode()),
            (PARKED_DEADLINE, f"{deadline:.3f}".encode()), (PARKED_ATTEMPT, str(attempt).encode()),
        ]  # fmt: skip
        await self.publisher.publish_record(self.park_topic, Record(msg.key or b"", msg.value or b"", headers))
        self.metrics.retries.labels(self.service, msg.topic).inc()
        log.info("parked for %.0fs (attempt %d): %s", due - now, attempt, exc,
                 extra={"event_id": event.id, "lead_id": event.subject, "topic": msg.topic})  # fmt: skip

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
        self, msg: RawMessage, exc: BaseException | str, reason: str, event: Envelope[Any] | None = None,
        *, topic: str | None = None, headers: Headers | None = None,
    ) -> None:  # fmt: skip
        """Sends the record as consumed to ``topic``'s dead-letter topic (``msg.topic``'s unless
        given), counts it under ``reason`` and logs it with its event id."""
        source = topic or msg.topic
        record = dead_letter(
            key=msg.key,
            value=msg.value,
            headers=msg.headers if headers is None else headers,
            error=exc,
            topic=source,
            partition=msg.partition,
            offset=msg.offset,
            service=self.service,
        )
        await self.publisher.publish_record(dlq_name(source), record)
        self.metrics.dead_lettered.labels(self.service, source, reason).inc()
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


class BatchState(Protocol):
    """What ``BatchProcessor`` needs from a service's handler around its events."""

    def key(self, event: Envelope[Any]) -> str | None:
        """Events of one key run one after the other in their partition order (None: alone)."""

    async def begin(self, events: Sequence[Envelope[Any]]) -> None:
        """Reads the batch's state in one round trip (may wait for a rebuild first)."""

    async def commit(self) -> None:
        """After every event and every output is acknowledged: the batch's state writes."""

    async def abandon(self) -> None:
        """The attempt failed: drop what ``begin`` read (the batch runs again)."""


@runtime_checkable
class BatchHandler(BatchState, Protocol):
    """A ``BatchState`` that also handles each event."""

    async def handle(self, event: Envelope[Any]) -> None:
        """One event, under the handler contract (publishes through the ``Publisher``)."""


class BatchProcessor:
    """A batch of records through a ``BatchHandler`` under ``EventProcessor``'s policy.

    ``retry="event"``: a transient failure retries that event alone (its key's later events
    wait); ``retry="batch"``: it abandons and re-runs the whole batch (a handler that applies
    events to an in-memory snapshot and writes it once in ``commit``).

    ``seal_refs`` (opt-in): the refs the handler will seal under, from the batch's decoded events;
    their keys are cached in one round trip before the handler runs. Name only refs the handler
    seals under anyway (a created key is a key an erasure must find): records of erased people
    are not among the decoded events, and an erasure decoded meanwhile drops what was fetched.

    ``for_record`` (for a handler that needs the consumed record, e.g. to forward it to a retry
    topic): gives each record's handler, as ``record_agent``'s factory does; without it the
    handler is ``handler.handle``."""

    def __init__(
        self,
        events: EventProcessor,
        handler: BatchState,
        expected: Mapping[str, type[Payload]],
        *,
        concurrency: int = 1,
        retry: Literal["event", "batch"] = "event",
        on_conflict: Callable[[], object] = lambda: None,
        seal_refs: SealRefs | None = None,
        for_record: Callable[[RawMessage], Handler] | None = None,
    ):
        if for_record is None:
            if not isinstance(handler, BatchHandler):
                raise TypeError(f"{type(handler).__name__} has no handle(): give BatchProcessor for_record")
            handle = handler.handle
            for_record = lambda _msg: handle  # noqa: E731
        self.for_record = for_record
        self.events = events
        self.seal_refs = seal_refs
        self.handler = handler
        self.expected = expected
        self.concurrency = max(1, concurrency)
        self.retry = retry
        self.on_conflict = on_conflict
        self.metrics = events.metrics
        self.service = events.service

    async def process(self, messages: Sequence[RawMessage]) -> int:
        """Handles a batch; returns how many events were handled (not dead-lettered). Returns
        after every output and every state write of the batch is acknowledged."""
        started = time.perf_counter()
        self.metrics.batch_records.labels(self.service).observe(len(messages))
        # Metric children are looked up once per topic and batch, not per record.
        for topic, n in Counter(msg.topic for msg in messages).items():
            self.metrics.consumed.labels(self.service, topic).inc(n)
        await prefetch_records(msg.value for msg in messages)
        valid: list[tuple[RawMessage, Envelope[Any]]] = []
        for msg in messages:
            try:
                valid.append((msg, await self.events.decode(msg, self.expected.get(msg.topic))))
            except SubjectErased:  # privacy: the person was erased; nothing to do, nothing to keep
                self.events.skip_erased(msg)
            except DecodeError as exc:
                await self.events.dead_letter(msg, exc, "invalid")
        if not valid:
            return 0
        if self.seal_refs is not None:
            create, existing = self.seal_refs([event for _, event in valid])
            await prepare_keys(create, existing=existing)

        async def abandoned(_: BaseException) -> None:
            self.metrics.retries.labels(self.service, valid[0][0].topic).inc()

        def on_retry(exc: BaseException) -> None:
            self.metrics.retries.labels(self.service, valid[0][0].topic).inc()

        handled = await retry_transient(lambda: self._attempt(valid), what=f"batch of {len(valid)}",
                                        base_s=self.events.retry_base_s, max_s=self.events.retry_max_s,
                                        on_retry=on_retry)  # fmt: skip
        self._observe(valid, started)
        return handled

    async def _attempt(self, valid: list[tuple[RawMessage, Envelope[Any]]]) -> int:
        while True:
            try:
                await self.handler.begin([event for _, event in valid])
                groups: dict[str | None, list[tuple[RawMessage, Envelope[Any]]]] = {}
                alone: list[list[tuple[RawMessage, Envelope[Any]]]] = []
                for item in valid:
                    key = self.handler.key(item[1])
                    if key is None:
                        alone.append([item])
                    else:
                        groups.setdefault(key, []).append(item)
                handled = await self._run_groups([*groups.values(), *alone])
                await self.events.publisher.flush()
                await self.handler.commit()
                return handled
            except BatchConflict:
                await self.handler.abandon()
                self.on_conflict()
                log.info("batch conflicted with another worker; re-running it")
            except BaseException:
                await self.handler.abandon()
                raise

    async def _run_groups(self, groups: list[list[tuple[RawMessage, Envelope[Any]]]]) -> int:
        per_event = self.retry == "event"
        if self.concurrency == 1 or len(groups) == 1:
            return sum([await self.events.run(m, e, self.for_record(m), retry=per_event) for g in groups for m, e in g])
        gate = asyncio.Semaphore(self.concurrency)

        async def one_key(items: list[tuple[RawMessage, Envelope[Any]]]) -> int:
            async with gate:
                return sum([await self.events.run(m, e, self.for_record(m), retry=per_event) for m, e in items])

        return sum(await asyncio.gather(*(one_key(items) for items in groups)))

    def _observe(self, valid: list[tuple[RawMessage, Envelope[Any]]], started: float) -> None:
        now = time.time()
        elapsed = time.perf_counter() - started
        by_topic: dict[str, list[float]] = {}
        for msg, event in valid:
            by_topic.setdefault(msg.topic, []).append(max(0.0, now - event.time.timestamp()))
        for topic, ages in by_topic.items():
            processing = self.metrics.processing.labels(self.service, topic)
            event_age = self.metrics.event_age.labels(self.service, topic)
            for age in ages:
                processing.observe(elapsed)
                event_age.observe(age)
            self.metrics.last_processed.labels(self.service, topic).set(now)


def _float_header(headers: Headers, name: str) -> float:
    try:
        return float(_header(headers, name) or 0.0)
    except ValueError:
        return 0.0


def _header(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode(errors="replace")
    return None
