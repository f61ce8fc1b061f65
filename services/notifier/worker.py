"""The notifier's Faust worker: three agents (requests, retries, engagement for suppression),
each running records through ``EventProcessor`` (decode -> handle -> publish, with the
dead-letter policy around it), plus /metrics /healthz /readyz on OPS_HOST:OPS_PORT."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from leadpipe.runtime.faust_app import make_app, with_assignment
from leadpipe.runtime.health import redis_reachable
from leadpipe.runtime.logs import setup_logging
from leadpipe.runtime.metrics import StageMetrics, serve_ops
from leadpipe.runtime.stream import TRANSIENT, EventProcessor, RawMessage
from schemas.codec import Record
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.notification_requested.v1 import NotificationRequested
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.notifier.config import NotifierSettings
from services.notifier.handlers import Notifier, due_at
from services.notifier.wiring import SERVICE, build_notifier

log = logging.getLogger(__name__)


class FaustSink:
    """Publishes through the Faust app's producer (acks=all) and waits for the ack."""

    def __init__(self, app: faust.App):
        self.app = app

    async def send(self, topic: str, record: Record) -> None:
        await self.app.producer.send_and_wait(topic, record.key, record.value, None, None, record.headers)


class Runtime:
    def __init__(self, settings: NotifierSettings, app: faust.App):
        self.settings = settings
        self.app = app
        self.registry = CollectorRegistry()
        self.stage = StageMetrics(SERVICE, self.registry)
        self.ready = asyncio.Event()
        self.redis: Redis[bytes] | None = None
        self.notifier: Notifier | None = None
        self.processor: EventProcessor | None = None

    async def start(self) -> None:
        s = self.settings
        # Faust's worker installs its own log handlers at start; put the redacting JSON one back.
        setup_logging(SERVICE, level=s.log_level, json_logs=s.log_json)
        for handler in logging.getLogger().handlers:
            # Faust redirects sys.stderr into logging; write to the real stream, not in a loop.
            if isinstance(handler, logging.StreamHandler) and sys.__stderr__ is not None:
                handler.setStream(sys.__stderr__)
        self.redis = Redis.from_url(s.redis_url, socket_timeout=5, socket_connect_timeout=5)
        sink = FaustSink(self.app)
        self.notifier = build_notifier(
            s, redis=self.redis, sink=sink, registry=self.registry, stage=self.stage, rebuildable=True
        )
        # Redis is an index of the topics: an empty keyspace is rebuilt before anything is sent.
        delay = 0.5
        while True:
            try:
                await self.notifier.ensure_built()
                break
            except TRANSIENT as exc:
                log.warning("rebuild check failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.processor = EventProcessor(
            service=SERVICE, metrics=self.stage, sink=sink, max_record_bytes=s.kafka_max_record_bytes
        )
        await serve_ops(self.registry, with_assignment(self.app, self.checks), s.ops_host, s.ops_port)
        self.ready.set()
        log.info("notifier ready", extra={"topic": s.notifier_requested_topic})

    async def checks(self) -> dict[str, bool]:
        redis_ok = await redis_reachable(self.redis)
        return {"started": self.ready.is_set(), "redis": redis_ok}

    async def stop(self) -> None:
        if self.notifier is not None:
            for sender in set(self.notifier.channels.values()):
                await sender.close()
        if self.redis is not None:
            await self.redis.aclose()  # type: ignore[attr-defined]


def build_app(settings: NotifierSettings) -> faust.App:
    app = make_app(settings.notifier_app_id, settings, broker_commit_interval=settings.notifier_commit_interval_s)
    runtime = Runtime(settings, app)
    requested = app.topic(settings.notifier_requested_topic)
    retry = app.topic(settings.notifier_retry_topic)
    engagement = app.topic(settings.notifier_engagement_topic)
    erasure = app.topic(settings.notifier_erasure_topic)

    async def records(stream: Any) -> AsyncIterator[RawMessage]:
        await runtime.ready.wait()
        async for event in stream.events():
            yield RawMessage.from_kafka(event.message)

    @app.task  # type: ignore[untyped-decorator]
    async def start() -> None:
        await runtime.start()

    async def stop(_: Any, **__: Any) -> None:
        await runtime.stop()

    app.on_before_shutdown.connect(stop)  # type: ignore[arg-type]

    @app.agent(requested, concurrency=settings.notifier_concurrency)
    async def on_requested(stream: Any) -> None:
        async for msg in records(stream):
            assert runtime.processor is not None and runtime.notifier is not None
            handler = functools.partial(runtime.notifier.on_request, msg=msg)
            await runtime.processor.process(msg, NotificationRequested, handler)

    @app.agent(retry, concurrency=settings.notifier_concurrency)
    async def on_retry(stream: Any) -> None:
        async for msg in records(stream):
            assert runtime.processor is not None and runtime.notifier is not None
            # Waiting here holds only the retry partition; new requests keep flowing.
            wait = due_at(msg) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            handler = functools.partial(runtime.notifier.on_retry, msg=msg)
            await runtime.processor.process(msg, NotificationRequested, handler)

    @app.agent(engagement)
    async def on_engagement(stream: Any) -> None:
        async for msg in records(stream):
            assert runtime.processor is not None and runtime.notifier is not None
            await runtime.processor.process(msg, LeadEngagement, runtime.notifier.on_engagement)

    @app.agent(erasure)
    async def on_erasure(stream: Any) -> None:
        async for msg in records(stream):
            assert runtime.processor is not None and runtime.notifier is not None
            await runtime.processor.process(msg, PersonErasureRequested, runtime.notifier.on_erasure)

    app.notifier_runtime = runtime  # type: ignore[attr-defined]
    return app
