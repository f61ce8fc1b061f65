"""A batch of consumed records through the nurture handler, under the pipeline's error policy.

The batch is grouped by lead: a lead's events run one after the other in their partition order,
different leads run concurrently (at most ``concurrency`` at a time). Each event keeps the
handler's own order (read -> decide -> reserve -> publish and await the acks -> compare-and-set
-> state-topic append), so a crash anywhere repeats only with the same ids. The states of the
batch's leads are read in one round trip up front; a lead's later events reuse the state its
previous event wrote (a stale one loses the compare-and-set and is read again). That read also
checks the keyspace's built marker: if Redis was wiped under the worker, the batch waits for the
rebuild from the state topic (``ensure_built``) before it decides anything.

``process`` returns after every output and every state-topic append of the batch is
acknowledged by the broker; only then are the batch's offsets acknowledged (the agent loop).

Per event, as ``EventProcessor`` does for one record: an invalid record is dead-lettered
(``invalid``), a handler's refusal too (``rejected``, ``handler_error``), and a transient
failure (Redis or the broker unreachable) is retried with backoff for that event alone. One bad
event never fails or dead-letters its batch-mates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from leadpipe.runtime.stream import TRANSIENT, EventProcessor, HandlerError, RawMessage
from schemas.codec import decode
from schemas.envelope import Envelope
from schemas.errors import DecodeError, SchemaError
from schemas.pii import SubjectErased
from services.nurture.handlers import Known, NurtureHandler

log = logging.getLogger(__name__)


class BatchProcessor:
    def __init__(
        self,
        handler: NurtureHandler,
        processor: EventProcessor,
        expected: dict[str, type[Any]],
        *,
        concurrency: int = 32,
        ensure_built: Callable[[], Awaitable[None]] | None = None,
    ):
        self.handler = handler
        self.processor = processor
        self.expected = expected
        self.concurrency = max(1, concurrency)
        self.ensure_built = ensure_built
        self.stage = processor.metrics
        self.service = processor.service

    async def process(self, messages: Sequence[RawMessage]) -> int:
        """Handles a batch; returns how many events were handled (not dead-lettered)."""
        started = time.perf_counter()
        for topic, n in Counter(msg.topic for msg in messages).items():
            self.stage.consumed.labels(self.service, topic).inc(n)
        groups: dict[str, list[tuple[RawMessage, Envelope[Any]]]] = {}
        for msg in messages:
            try:
                event = decode(msg.value, msg.headers, self.expected.get(msg.topic))
            except SubjectErased:  # privacy hook: the person was erased
                self.processor.skip_erased(msg)
                continue
            except DecodeError as exc:
                await self.processor.dead_letter(msg, exc, "invalid")
                continue
            lead_id = getattr(event.data, "lead_id", None)
            # An event without a lead id is refused by the handler; it needs no group of its own.
            key = lead_id if isinstance(lead_id, str) else f"\0{msg.topic}/{msg.partition}/{msg.offset}"
            groups.setdefault(key, []).append((msg, event))
        known = await self._prefetch([k for k in groups if not k.startswith("\0")])
        gate = asyncio.Semaphore(self.concurrency)

        async def lead(key: str, items: list[tuple[RawMessage, Envelope[Any]]]) -> int:
            async with gate:
                hint = known.get(key)
                done = 0
                for msg, event in items:
                    done += await self._one(msg, event, hint, started)
                return done

        handled = sum(await asyncio.gather(*(lead(k, items) for k, items in groups.items())))
        # The batch's offsets are acknowledged when this returns: its state appends first.
        await self.handler.state_log.flush()
        return handled

    async def _prefetch(self, lead_ids: list[str]) -> dict[str, Known]:
        if not lead_ids:
            return {}
        store = self.handler.store
        try:
            if self.ensure_built is None:
                states = await store.load_many(lead_ids)
            else:
                states, built = await store.load_many_checked(lead_ids)
                if not built:  # Redis was wiped: nothing is decided before it is rebuilt
                    await self.ensure_built()
                    states, _ = await store.load_many_checked(lead_ids)
        except TRANSIENT as exc:  # each event reads its lead itself (and retries) instead
            log.warning("batch read of %d lead states failed: %s", len(lead_ids), exc)
            return {}
        return {lead_id: Known(state, True) for lead_id, state in states.items()}

    async def _one(self, msg: RawMessage, event: Envelope[Any], known: Known | None, started: float) -> int:
        delay = self.processor.retry_base_s
        while True:
            try:
                await self.handler.handle(event, known)
                break
            except TRANSIENT as exc:
                if known is not None:
                    known.valid = False
                self.stage.retries.labels(self.service, msg.topic).inc()
                log.warning("transient failure, retrying in %.1fs: %s", delay, exc,
                            extra={"event_id": event.id, "lead_id": event.subject,
                                   "correlation_id": event.correlationid})  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.processor.retry_max_s)
            except (HandlerError, SchemaError, ValueError) as exc:
                await self.processor.dead_letter(msg, exc, "rejected", event)
                return 0
            except Exception as exc:
                log.exception("handler failed", extra={"event_id": event.id, "lead_id": event.subject,
                                                       "topic": msg.topic})  # fmt: skip
                await self.processor.dead_letter(msg, exc, "handler_error", event)
                return 0
        self.stage.done(msg.topic, started, event.time.timestamp())
        return 1
