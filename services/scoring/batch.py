"""The error policy for a batch of records: decode -> handle -> publish -> state topic -> store.

Order matters for at-least-once without loss: outputs are published (and acknowledged by
the broker) *before* the batch's state, with the ids of the events it counted, is appended to
the state topic and then written to Redis; the input offsets are committed only after all
three. A crash anywhere replays the batch: events already stored are skipped as duplicates,
and anything published again carries the same deterministic event id. Invalid records go to
the dead-letter topic via ``EventProcessor``.

The batch's read also returns the keyspace's built marker: a Redis wiped under the worker is
rebuilt from the state topic (``ensure_built``) before the batch decides anything, and a wipe
between the read and the write fails the write's WATCH, so the batch is read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import WatchError

from leadpipe.runtime.stream import TRANSIENT, EventProcessor, HandlerError, RawMessage
from schemas.codec import Record, decode, encode
from schemas.envelope import Envelope
from schemas.errors import DecodeError, SchemaError
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.pii import SubjectErased
from services.scoring.adapters.metrics import ScoringMetrics
from services.scoring.adapters.redis_store import RedisLeadStore, Snapshot
from services.scoring.adapters.state_log import StateLog
from services.scoring.domain.errors import ModelError, ScoringError
from services.scoring.domain.identity import Identifiers
from services.scoring.domain.model import ScoringModel
from services.scoring.handlers import Scorer, identifiers_of

log = logging.getLogger(__name__)

EXPECTED = {LeadCaptured.topic(): LeadCaptured, LeadEngagement.topic(): LeadEngagement}

#: Sends a record without waiting; returns something to await for the broker's ack.
SendNoWait = Callable[[str, Record], Awaitable[Awaitable[Any]]]


class BatchProcessor:
    def __init__(
        self,
        *,
        scorer: Scorer,
        store: RedisLeadStore,
        processor: EventProcessor,
        metrics: ScoringMetrics,
        send_nowait: SendNoWait,
        expected: dict[str, type[Any]] | None = None,
        output_topic: str | None = None,
        retry_base_s: float = 0.2,
        retry_max_s: float = 5.0,
        models: Callable[[str], ScoringModel] | None = None,
        state_log: StateLog | None = None,
        ensure_built: Callable[[], Awaitable[None]] | None = None,
    ):
        self.state_log = state_log
        self.ensure_built = ensure_built
        self.scorer = scorer
        self.default_model = scorer.model
        self.models = models
        self._refused: set[str] = set()
        self.store = store
        self.processor = processor
        self.metrics = metrics
        self.stage = metrics.stage
        self.service = metrics.stage.service
        self.send_nowait = send_nowait
        self.expected = expected or EXPECTED
        self.output_topic = output_topic
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s

    async def process(self, messages: Sequence[RawMessage]) -> int:
        """Handle a batch; returns how many records were published."""
        started = time.perf_counter()
        # Metric children are looked up once per topic and batch, not per record.
        for topic, n in Counter(msg.topic for msg in messages).items():
            self.stage.consumed.labels(self.service, topic).inc(n)
        valid: list[tuple[RawMessage, Envelope[Any], Identifiers]] = []
        for msg in messages:
            expected = self._expected_for(msg.topic)
            try:
                event = decode(msg.value, msg.headers, expected)
            except SubjectErased:  # privacy hook: the person was erased
                self.processor.skip_erased(msg)
                continue
            except DecodeError as exc:
                await self.processor.dead_letter(msg, exc, "invalid")
                continue
            try:
                ids = identifiers_of(event)
            except ScoringError as exc:
                await self.processor.dead_letter(msg, exc, "rejected", event)
                continue
            valid.append((msg, event, ids))
        if not valid:
            return 0
        delay = self.retry_base_s
        while True:
            try:
                published = await self._attempt(valid)
                break
            except WatchError:
                self.metrics.conflicts.inc()
                log.info("batch conflicted with another worker; re-running it")
            except TRANSIENT as exc:
                await self.store.abandon()
                for msg, _, _ in valid[:1]:
                    self.stage.retries.labels(self.service, msg.topic).inc()
                log.warning("transient failure, retrying batch of %d in %.1fs: %s", len(valid), delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
        done = time.perf_counter()
        now = time.time()
        elapsed = done - started
        by_topic: dict[str, list[float]] = {}
        for msg, event, _ in valid:
            by_topic.setdefault(msg.topic, []).append(max(0.0, now - event.time.timestamp()))
        for topic, ages in by_topic.items():
            processing = self.stage.processing.labels(self.service, topic)
            event_age = self.stage.event_age.labels(self.service, topic)
            for age in ages:
                processing.observe(elapsed)
                event_age.observe(age)
            self.stage.last_processed.labels(self.service, topic).set(now)
        return published

    def _expected_for(self, topic: str) -> type[Any] | None:
        return self.expected.get(topic)

    def _use_model(self, version: str | None) -> None:
        """Score with the active model version recorded in the store (read with the batch)."""
        current = self.scorer.model
        if version is None:
            model = self.default_model
        elif version == current.version or self.models is None or version in self._refused:
            return
        else:
            try:
                model = self.models(version)
            except ModelError as exc:
                # A version this deployment does not ship: keep scoring with the current model
                # (and say so once) rather than stop the stage; rescore refuses such versions.
                self._refused.add(version)
                log.error("active model %s not available, still scoring with %s: %s", version, current.version, exc)
                return
        if model is not current:
            log.info("scoring model switched from %s to %s", current.version, model.version)
            self.scorer.model = model

    async def _read(self, identifiers: list[str]) -> Snapshot:
        snap = await self.store.read(identifiers)
        while not snap.built and self.ensure_built is not None:
            await self.store.abandon()
            await self.ensure_built()  # Redis was wiped: nothing is decided on an empty keyspace
            snap = await self.store.read(identifiers)
        return snap

    async def _attempt(self, valid: list[tuple[RawMessage, Envelope[Any], Identifiers]]) -> int:
        snap = await self._read([k for _, _, ids in valid for k in ids.strings()])
        self._use_model(snap.model_version)
        pending: list[tuple[str, Awaitable[Any]]] = []
        try:
            for msg, event, ids in valid:
                try:
                    outcome = self.scorer.handle(event, ids, snap)
                    records = [
                        (self.output_topic or out.data.topic(), encode(out, max_bytes=self.processor.max_record_bytes))
                        for out in outcome.outputs
                    ]
                except (HandlerError, SchemaError, ScoringError, ValueError) as exc:
                    await self.processor.dead_letter(msg, exc, "rejected", event)
                    continue
                except TRANSIENT:
                    raise
                except Exception as exc:
                    log.exception("handler failed", extra={"event_id": event.id, "topic": msg.topic})
                    await self.processor.dead_letter(msg, exc, "handler_error", event)
                    continue
                if outcome.duplicate:
                    self.metrics.duplicates.inc()
                for topic, record in records:
                    pending.append((topic, await self.send_nowait(topic, record)))
            for _topic, ack in pending:
                await ack
            if self.state_log is not None and (snap.changed_leads or snap.deleted_leads):
                await self.state_log.append(snap.changed_leads.values(), snap.deleted_leads)
        except BaseException:
            await self.store.abandon()
            raise
        for topic, n in Counter(topic for topic, _ in pending).items():
            self.stage.published.labels(self.service, topic).inc(n)
        await self.store.write(snap)
        return len(pending)
