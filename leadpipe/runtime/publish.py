"""The one way a consumer service produces: handlers publish through the ``Publisher`` port.

``KafkaPublisher`` implements it over the service's one aiokafka producer (made by
``leadpipe.runtime.kafka.make_producer`` in the service's bootstrap); tests use a fake that
implements the same Protocol (``tests/fakes.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from leadpipe.runtime.keystore import prepare_keys
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.retry import retry_transient
from schemas.codec import Record, encode
from schemas.envelope import Envelope
from schemas.pii import sealing_ref


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
    """``Publisher`` over an aiokafka producer; counts ``leadpipe_events_published_total``.

    One instance serves every agent of a service: ``flush`` waits for every send not yet
    acknowledged, whichever agent made it (never fewer than its caller's own), so a batch can
    never commit while one of its outputs is still in flight in another agent's flush."""

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
        self._unacked: dict[asyncio.Future[Any], str] = {}
        self._published: dict[str, Any] = {}

    def _count(self, topic: str, n: int = 1) -> None:
        # The labelled child is kept: ``labels()`` takes a lock and builds a tuple (once per record).
        child = self._published.get(topic)
        if child is None:
            child = self._published[topic] = self.metrics.published.labels(self.metrics.service, topic)
        child.inc(n)

    def _acked(self, ack: asyncio.Future[Any]) -> None:
        topic = self._unacked.pop(ack, None)
        if topic is not None and not ack.cancelled() and ack.exception() is None:
            self._count(topic)

    async def _send_nowait(self, events: Sequence[Envelope[Any]]) -> list[asyncio.Future[Any]]:
        # privacy hook: the keys the events are sealed under, cached in one async round trip
        # (got or created, as ``encode`` would, without blocking the loop; none when all cached)
        await prepare_keys(sealing_ref(event.data) for event in events)
        acks = []
        for event in events:
            topic = self.topic_for(event.data.topic())
            record = encode(event, max_bytes=self.max_record_bytes)
            ack = asyncio.ensure_future(
                await self.producer.send(topic, record.value, key=record.key, headers=record.headers)
            )
            self._unacked[ack] = topic
            ack.add_done_callback(self._acked)
            acks.append(ack)
        return acks

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        for ack in await self._send_nowait(events):
            await ack

    async def send(self, events: Sequence[Envelope[Any]]) -> None:
        await self._send_nowait(events)

    async def flush(self) -> None:
        for ack in list(self._unacked):
            await ack

    async def publish_record(self, topic: str, record: Record) -> None:
        async def once() -> Any:
            return await self.producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)

        await retry_transient(once, what=f"publish to {topic}", base_s=self.retry_base_s, max_s=self.retry_max_s)
        self._count(topic)


class SharedAcks:
    """``Publisher.publish`` for handlers running side by side in one batch, acknowledged
    together: a handler's events are held until every handler running beside it has published
    too (or finished without publishing); then all of them are sent at once, one ``flush``
    acknowledges them and wakes every handler, with its error if it failed. Their records go out
    in one or a few produce requests where each handler's own ``publish`` sent a request of its
    own (and, sent as each handler got there, they were spread over many).

    Each handler's events are sent with a ``send`` of their own, so a send that fails (an event
    that cannot be encoded, the producer refusing it) fails only the handler whose events they
    were, as its own ``publish`` would have; the others are sent and acknowledged as usual.

    Running means between ``enter`` and ``leave`` (the batch handler's ``handle``, per attempt:
    a handler backing off before a retry is not running and is not waited for). A handler waits
    longer than with a plain ``publish`` (for the others to get there), but only for handlers the
    batch waits for anyway, so no wait is added that the batch would not already end with."""

    def __init__(self, publisher: Publisher):
        self.publisher = publisher
        self.running = 0
        self._waiting: list[tuple[Sequence[Envelope[Any]], asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self._looking = False

    def enter(self) -> None:
        self.running += 1

    def leave(self) -> None:
        self.running -= 1
        self._send_when_all_published()

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((events, done))
        self._send_when_all_published()
        await done

    def _send_when_all_published(self) -> None:
        # Looked at once the handlers ready to run have run (a batch's handlers start together:
        # one that publishes before the others even started must not go out alone).
        if self._waiting and not self._looking:
            self._looking = True
            asyncio.get_running_loop().call_soon(self._send_if_all_published)

    def _send_if_all_published(self) -> None:
        self._looking = False
        if not self._waiting or len(self._waiting) < self.running:
            return
        waiting, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send_and_flush(waiting))
        self._tasks.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._tasks.discard)

    async def _send_and_flush(self, waiting: list[tuple[Sequence[Envelope[Any]], asyncio.Future[None]]]) -> None:
        sent: list[asyncio.Future[None]] = []
        error: BaseException | None = None
        try:
            # privacy hook: every handler's sealing keys cached in one round trip (none when all
            # are), so that the sends below follow one another and share their requests
            await prepare_keys(sealing_ref(event.data) for events, _ in waiting for event in events)
            for events, done in waiting:
                try:
                    await self.publisher.send(events)
                except Exception as exc:  # this handler's own events: only it fails
                    if not done.done():
                        done.set_exception(exc)
                else:
                    sent.append(done)
            await self.publisher.flush()
        except asyncio.CancelledError:  # stopping: every handler still waiting is cancelled too
            for _, done in waiting:
                done.cancel()
            raise
        except Exception as exc:  # the flush failed: every handler whose events were sent gets it
            error = exc
        for done in sent:
            if done.done():  # its handler was cancelled meanwhile
                continue
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(None)
