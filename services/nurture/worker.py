"""The nurture worker: a Faust agent over lead.scored, notification.outcome and
assignment.response, plus the scheduler loop that fires due touches and SLA timers and serves the overflow queue.

Records of one lead share a partition (keyed by lead id), so one agent instance sees a lead's
events in order. The agent takes records in batches (``stream.take_events``): a lead's events in
order, different leads concurrently (``batch.py``); offsets are acknowledged after the batch body
returns (outputs and state appends acked). The scheduler runs in every replica and claims due
leads atomically in Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from leadpipe.runtime.faust_app import make_app, with_assignment
from leadpipe.runtime.health import redis_reachable
from leadpipe.runtime.kafka import make_producer, send_record
from leadpipe.runtime.logs import setup_logging
from leadpipe.runtime.metrics import serve_ops
from leadpipe.runtime.stream import TRANSIENT, EventProcessor, RawMessage, raw_batches
from schemas.assignment_response.v1 import AssignmentResponse
from schemas.codec import Record, encode
from schemas.envelope import Envelope
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.adapters.state_log import StateLog, ensure_state_topic, rebuild
from services.nurture.batch import BatchProcessor
from services.nurture.config import NurtureSettings
from services.nurture.domain.engine import Nurture
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.routing import parse_directory
from services.nurture.handlers import Links, NurtureHandler

log = logging.getLogger(__name__)
INPUTS: tuple[type[Any], ...] = (LeadScored, NotificationOutcome, AssignmentResponse, LeadOutcomeLogged)


def load_engine(settings: NurtureSettings) -> Nurture:
    """Reads and validates the playbooks and the sales directory (``ConfigError`` names the field)."""
    books = parse_playbooks(yaml.safe_load(settings.nurture_playbooks_path.read_text()))
    if settings.nurture_sla_seconds is not None:
        from dataclasses import replace
        from datetime import timedelta

        books = replace(books, policy=replace(books.policy, sla=timedelta(seconds=settings.nurture_sla_seconds)))
    directory = parse_directory(yaml.safe_load(settings.nurture_directory_path.read_text()))
    return Nurture(books, directory)


class _Publisher:
    """Publishes a decision's events in one flush: sent together, then all acks awaited."""

    def __init__(self, producer: Any, settings: NurtureSettings, metrics: NurtureMetrics):
        self.producer, self.settings, self.metrics = producer, settings, metrics

    async def send(self, topic: str, record: Record) -> None:
        await send_record(self.producer, topic, record)

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        futures = []
        for event in events:
            topic = self.settings.topic(event.data.topic())
            rec = encode(event, max_bytes=self.settings.kafka_max_record_bytes)
            futures.append((topic, await self.producer.send(topic, rec.value, key=rec.key, headers=rec.headers)))
        for topic, fut in futures:
            await fut
            self.metrics.stage.published.labels("nurture", topic).inc()


class Wiring:
    def __init__(self, settings: NurtureSettings, metrics: NurtureMetrics):
        self.settings = settings
        self.metrics = metrics
        self.redis: Redis[bytes] | None = None
        self.producer: Any = None
        self.handler: NurtureHandler | None = None
        self.processor: EventProcessor | None = None
        self.batches: BatchProcessor | None = None
        self.started = asyncio.Event()
        self._lock = asyncio.Lock()
        self._rebuilding = asyncio.Lock()
        self.store: RedisNurtureStore | None = None
        self.state_topic = ""
        self.engine: Nurture | None = None

    async def ensure_built(self) -> None:
        """Rebuilds Redis from the state topic unless it carries the built marker (at start, and
        when a batch or the scheduler finds it gone: Redis wiped under the worker). Concurrent
        callers wait for one rebuild; Redis or the broker being away is waited out."""
        assert self.store is not None and self.engine is not None
        store, engine = self.store, self.engine
        async with self._rebuilding:
            delay = 0.5
            while True:
                try:
                    if await store.is_built():
                        return
                    log.warning("nurture state is missing from Redis; rebuilding it from %s", self.state_topic)
                    await rebuild(self.settings, self.state_topic, store, engine.next_due, engine.queue_entry)
                    await store.mark_built()
                    self.metrics.rebuilds.inc()
                except TRANSIENT as exc:
                    log.warning("rebuild failed, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    async def start(self) -> NurtureHandler:
        async with self._lock:
            if self.handler is not None:
                return self.handler
            s = self.settings
            setup_logging("nurture", level=s.log_level, json_logs=s.log_json)
            for logger in logging.Logger.manager.loggerDict.values():
                if isinstance(logger, logging.Logger):
                    logger.disabled = False
            engine = load_engine(s)
            self.redis = Redis.from_url(s.redis_url)
            self.producer = make_producer(s)
            await self.producer.start()
            store = RedisNurtureStore(self.redis, s.nurture_redis_prefix)
            state_topic = s.topic(s.nurture_state_topic)
            await ensure_state_topic(s, state_topic)
            self.store, self.state_topic, self.engine = store, state_topic, engine
            await self.ensure_built()
            publisher = _Publisher(self.producer, s, self.metrics)
            links = Links(s.leadpipe_link_secret, s.leadpipe_public_url, s.link_ttl_s)
            self.handler = NurtureHandler(engine, store, publisher, StateLog(self.producer, state_topic),
                                          self.metrics, links)  # fmt: skip
            self.processor = EventProcessor(service="nurture", metrics=self.metrics.stage, sink=publisher,
                                            max_record_bytes=s.kafka_max_record_bytes)  # fmt: skip
            expected = {s.topic(p.topic()): p for p in INPUTS}
            self.batches = BatchProcessor(self.handler, self.processor, expected,
                                          concurrency=s.nurture_batch_concurrency,
                                          ensure_built=self.ensure_built)  # fmt: skip
            log.info("nurture started: playbooks %s, directory %s (%d reps)", engine.playbooks.version,
                     engine.directory.version, len(engine.directory.reps))  # fmt: skip
            self.started.set()
            return self.handler

    async def stop(self) -> None:
        self.started.clear()
        if self.producer is not None:
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]

    async def ready(self) -> dict[str, bool]:
        redis_ok = await redis_reachable(self.redis)
        return {"redis": redis_ok, "kafka_producer": self.producer is not None, "agent": self.started.is_set()}


def build_app(settings: NurtureSettings, registry: CollectorRegistry | None = None) -> faust.App:
    registry = registry or CollectorRegistry()
    metrics = NurtureMetrics(registry)
    expected = {settings.topic(p.topic()): p for p in INPUTS}
    app = make_app(settings.nurture_group_id, settings)
    source = app.topic(*expected, key_type=bytes, value_type=bytes)
    wiring = Wiring(settings, metrics)
    ops: list[web.AppRunner] = []

    @app.agent(source, name="nurture")
    async def nurture(stream: faust.StreamT[bytes]) -> None:
        await wiring.start()
        assert wiring.batches is not None
        batches = wiring.batches
        try:
            async for records in raw_batches(stream, settings.nurture_batch_max, settings.nurture_batch_within_s):
                await batches.process(records)
        finally:
            await wiring.stop()

    erasure = app.topic(settings.topic(PersonErasureRequested.topic()), key_type=bytes, value_type=bytes)

    @app.agent(erasure, name="nurture-erasure")
    async def erase(stream: faust.StreamT[bytes]) -> None:
        handler = await wiring.start()
        assert wiring.processor is not None
        async for event in stream.events():
            await wiring.processor.process(RawMessage.from_kafka(event.message), PersonErasureRequested, handler.erase)

    @app.task  # type: ignore[untyped-decorator]
    async def serve() -> None:
        ops.append(await serve_ops(registry, with_assignment(app, wiring.ready), settings.ops_host, settings.ops_port))

    @app.task  # type: ignore[untyped-decorator]
    async def scheduler() -> None:
        # Due touches and SLA timers do not wait for the consumer group to settle.
        handler = await wiring.start()
        beat = 0
        while True:
            try:
                handled = await handler.tick(settings.nurture_claim_lease_s, settings.nurture_claim_batch)
                beat += 1
                second = beat % max(1, int(1 / settings.nurture_tick_interval_s)) == 0
                # At once when this worker released capacity; about once a second for capacity
                # released by another replica and for a rep's new day (capacity is per local day).
                if second:
                    await wiring.ensure_built()  # about once a second: a wipe with no events coming
                if second or handler.capacity_freed.is_set():
                    await handler.serve_queue()
                if second:
                    await handler.refresh_gauges()
            except Exception:
                log.exception("scheduler tick failed; retrying")
                handled = 0
            if handled < settings.nurture_claim_batch:
                await asyncio.sleep(settings.nurture_tick_interval_s)

    return app
