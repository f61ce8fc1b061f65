"""The scoring worker: a Faust agent over lead.captured + lead.engagement, emitting lead.scored.

The agent takes records in batches (``stream.take_events``): one Redis round trip and one
producer flush per batch instead of per record, which is where a naive agent spends its time.
Offsets are acknowledged after the batch body returns (outputs acked, states appended to the
state topic, state written). Before the first batch, and whenever a batch finds the keyspace's
built marker gone, Redis is rebuilt from the state topic (``Wiring.ensure_built``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import faust
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from leadpipe.runtime.faust_app import make_app, with_assignment
from leadpipe.runtime.health import redis_reachable
from leadpipe.runtime.kafka import make_producer, send_record
from leadpipe.runtime.logs import setup_logging
from leadpipe.runtime.metrics import serve_ops
from leadpipe.runtime.stream import TRANSIENT, EventProcessor, RawMessage, raw_batches
from schemas.codec import Record
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.scoring.adapters.metrics import ScoringMetrics
from services.scoring.adapters.redis_store import RedisLeadStore
from services.scoring.adapters.reference_files import ModelCatalog, load_model, load_reference
from services.scoring.adapters.state_log import StateLog, ensure_state_topic, rebuild
from services.scoring.batch import EXPECTED, BatchProcessor
from services.scoring.config import ScoringSettings
from services.scoring.handlers import Eraser, Scorer

log = logging.getLogger(__name__)


class _ProducerSink:
    def __init__(self, producer: Any):
        self.producer = producer

    async def send(self, topic: str, record: Record) -> None:
        await send_record(self.producer, topic, record)


class Wiring:
    """Clients the agent needs, started with the agent and stopped with it."""

    def __init__(self, settings: ScoringSettings, metrics: ScoringMetrics, expected: dict[str, type[Any]]):
        self.settings = settings
        self.metrics = metrics
        self.expected = expected
        self.redis: Redis[bytes] | None = None
        self.producer: Any = None
        self.store: RedisLeadStore | None = None
        self.processing = False
        self.started = asyncio.Event()
        self._rebuilding = asyncio.Lock()

    async def ensure_built(self) -> None:
        """Rebuilds Redis from the state topic unless it carries the built marker (at start, and
        when a batch finds it gone: Redis wiped under the worker). Concurrent callers wait for
        one rebuild; a wipe during the rebuild makes it run again; Redis or the broker being
        away is waited out."""
        assert self.store is not None
        store, topic = self.store, self.settings.scoring_state_topic
        async with self._rebuilding:
            delay = 0.5
            while True:
                try:
                    if await store.is_built():
                        return
                    log.warning("scoring state is missing from Redis; rebuilding it from %s", topic)
                    token = uuid.uuid4().hex
                    await store.begin_rebuild(token)
                    await rebuild(self.settings, topic, store, StateLog(self.producer, topic))
                    if await store.mark_built(token):
                        self.metrics.rebuilds.inc()
                except TRANSIENT as exc:
                    log.warning("rebuild failed, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    async def start(self) -> BatchProcessor:
        s = self.settings
        # Faust's worker configures logging with disable_existing_loggers: take it back.
        setup_logging("scoring", level=s.log_level, json_logs=s.log_json)
        for logger in logging.Logger.manager.loggerDict.values():
            if isinstance(logger, logging.Logger):
                logger.disabled = False
        self.redis = Redis.from_url(s.redis_url)
        self.producer = make_producer(s, linger_ms=5, max_batch_size=256 * 1024)
        await self.producer.start()
        model = load_model(s.scoring_model_path)
        ref = load_reference(s.scoring_data_dir, s.scoring_served_area_path)
        log.info("scoring model %s loaded (%d rules)", model.version, len(model.rules))
        store = self.store = RedisLeadStore(self.redis, s.scoring_redis_prefix)
        await ensure_state_topic(s, s.scoring_state_topic)
        await self.ensure_built()
        observer = _Observer(self.metrics)
        processor = EventProcessor(
            service="scoring", metrics=self.metrics.stage, sink=_ProducerSink(self.producer),
            max_record_bytes=s.kafka_max_record_bytes,
        )  # fmt: skip
        producer = self.producer

        async def send_nowait(topic: str, record: Record) -> Any:
            return await producer.send(topic, record.value, key=record.key, headers=record.headers)

        self.processing = True
        self.started.set()
        return BatchProcessor(
            scorer=Scorer(model, ref, observer), store=store, processor=processor, metrics=self.metrics,
            send_nowait=send_nowait, expected=self.expected, output_topic=s.scoring_output_topic,
            models=ModelCatalog(s.scoring_models_dir).get, state_log=StateLog(producer, s.scoring_state_topic),
            ensure_built=self.ensure_built,
        )  # fmt: skip

    async def stop(self) -> None:
        self.processing = False
        self.started.clear()
        if self.producer is not None:
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]

    async def ready(self) -> dict[str, bool]:
        redis_ok = await redis_reachable(self.redis)
        return {"redis": redis_ok, "kafka_producer": self.producer is not None, "agent": self.processing}


class _Observer:
    def __init__(self, metrics: ScoringMetrics):
        self.metrics = metrics
        self._grades: dict[str, Any] = {}

    def graded(self, grade: str) -> None:
        # Once per event: keep the labelled child (``labels()`` takes a lock and builds a tuple).
        child = self._grades.get(grade)
        if child is None:
            child = self._grades[grade] = self.metrics.grades.labels(grade)
        child.inc()

    def merged(self, count: int) -> None:
        self.metrics.merges.inc(count)

    def duplicate(self) -> None:
        self.metrics.duplicates.inc()


def build_app(settings: ScoringSettings, registry: CollectorRegistry | None = None) -> faust.App:
    registry = registry or CollectorRegistry()
    metrics = ScoringMetrics(registry)
    topics = [t.strip() for t in settings.scoring_input_topics.split(",") if t.strip()]
    expected: dict[str, type[Any]] = {
        topics[0]: EXPECTED["lead.captured.v1"],
        topics[1]: EXPECTED["lead.engagement.v1"],
    }
    app = make_app(settings.scoring_group_id, settings)
    source = app.topic(*topics, key_type=bytes, value_type=bytes)
    wiring = Wiring(settings, metrics, expected)
    ops: list[web.AppRunner] = []

    @app.agent(source, name="score")
    async def score(stream: faust.StreamT[bytes]) -> None:
        batches = await wiring.start()
        try:
            async for records in raw_batches(stream, settings.scoring_batch_max, settings.scoring_batch_within_s):
                await batches.process(records)
        finally:
            await wiring.stop()

    erasure = app.topic(settings.scoring_erasure_topic, key_type=bytes, value_type=bytes)

    @app.agent(erasure, name="scoring-erasure")
    async def erase(stream: faust.StreamT[bytes]) -> None:
        await wiring.started.wait()
        assert wiring.redis is not None
        # Its own store: a store's watched pipeline belongs to one caller at a time.
        eraser = Eraser(RedisLeadStore(wiring.redis, settings.scoring_redis_prefix),
                        StateLog(wiring.producer, settings.scoring_state_topic),
                        erased_leads=metrics.erased_leads)  # fmt: skip
        processor = EventProcessor(service="scoring", metrics=metrics.stage, sink=_ProducerSink(wiring.producer),
                                   max_record_bytes=settings.kafka_max_record_bytes)  # fmt: skip
        async for event in stream.events():
            await processor.process(RawMessage.from_kafka(event.message), PersonErasureRequested, eraser.handle)

    @app.task  # type: ignore[untyped-decorator]
    async def serve() -> None:
        ops.append(await serve_ops(registry, with_assignment(app, wiring.ready), settings.ops_host, settings.ops_port))

    return app
