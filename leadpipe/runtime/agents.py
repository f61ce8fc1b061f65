"""Faust agent declarations every consumer worker uses: a worker is a list of these calls.

- ``batch_agent``: records in batches through a ``BatchProcessor`` (per-key order, bounded
  concurrency); the batch's offsets are acknowledged when ``process`` returned (outputs acked).
- ``record_agent``: one record at a time through ``EventProcessor.process`` with a handler.
- ``park_agent``: parked records (``stream.NotYet``) back through their handler when due.
- ``ops_task``: /metrics /healthz /readyz on the service's ops port.
- ``lifecycle``: starts the service when the worker starts, stops it at shutdown.
- ``run_worker``: ``python -m services.<name>`` (Faust's CLI at ``LOG_LEVEL``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from leadpipe.runtime.faust_app import consumer_ready, with_assignment
from leadpipe.runtime.faust_compat import faust_loglevel, take_batches
from leadpipe.runtime.heap import settle_once
from leadpipe.runtime.kafka import ensure_topics
from leadpipe.runtime.metrics import serve_ops
from leadpipe.runtime.service import ConsumerService
from leadpipe.runtime.settings import ServiceSettings
from leadpipe.runtime.stream import (
    BatchProcessor,
    Handler,
    RawMessage,
    parked_due,
    raw_batches,
    raw_records,
    unparked,
)
from schemas.base import Payload
from schemas.topics import TopicSpec


def lifecycle(app: faust.App, service: ConsumerService) -> None:
    @app.task  # type: ignore[untyped-decorator]
    async def start() -> None:
        await service.start()

    async def stop(_: Any, **__: Any) -> None:
        await service.stop()

    app.on_before_shutdown.connect(stop)  # type: ignore[arg-type]


def batch_agent(
    app: faust.App,
    topics: list[str],
    *,
    name: str,
    service: ConsumerService,
    batches: Callable[[], BatchProcessor],
    max_records: int,
    within_s: float,
) -> None:
    source = app.topic(*topics, key_type=bytes, value_type=bytes)

    @app.agent(source, name=name)
    async def agent(stream: faust.StreamT[bytes]) -> None:
        await service.start()
        processor = batches()
        async for records in raw_batches(take_batches(stream, max_records, within_s)):
            await processor.process(records)


def record_agent(
    app: faust.App,
    topic: str,
    *,
    name: str,
    service: ConsumerService,
    expected: type[Payload],
    handler: Callable[[], Callable[[RawMessage], Handler]],
    concurrency: int = 1,
    before: Callable[[RawMessage], Awaitable[None]] | None = None,
) -> None:
    """``handler()`` (after start) gives, per record, the handler for its event (a handler that
    needs the consumed record, e.g. to forward it, closes over it). ``before`` runs first (a
    wait that holds only this agent's partitions)."""
    source = app.topic(topic, key_type=bytes, value_type=bytes)

    @app.agent(source, name=name, concurrency=concurrency)
    async def agent(stream: faust.StreamT[bytes]) -> None:
        await service.start()
        for_record = handler()
        async for msg in raw_records(stream):
            if before is not None:
                await before(msg)
            await service.events.process(msg, expected, for_record(msg))


def park_agent(
    app: faust.App,
    topic: str,
    *,
    name: str,
    service: ConsumerService,
    expected: Mapping[str, type[Payload]],
    handler: Callable[[], Handler],
) -> None:
    """Parked records (``stream.NotYet``) back through ``handler`` when due, as records of their
    original topic. Waiting holds only the park topic's partitions."""
    source = app.topic(topic, key_type=bytes, value_type=bytes)

    @app.agent(source, name=name)
    async def agent(stream: faust.StreamT[bytes]) -> None:
        await service.start()
        handle = handler()
        async for parked in raw_records(stream):
            wait = parked_due(parked) - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            msg = unparked(parked)
            await service.events.process(msg, expected.get(msg.topic), handle)


def ops_task(app: faust.App, service: ConsumerService, registry: CollectorRegistry, host: str, port: int) -> None:
    runners: list[web.AppRunner] = []
    restarts = Counter(
        "leadpipe_consumer_partition_restarts_total",
        "Partitions whose delivery the worker restarted: records waiting, none queued or processed, "
        "no progress for KAFKA_DELIVERY_STALL_S",
        ["service", "topic", "partition"],
        registry=registry,
    )
    app.delivery_restarts = lambda topic, partition: restarts.labels(service.service, topic, str(partition)).inc()  # type: ignore[attr-defined]

    @app.task  # type: ignore[untyped-decorator]
    async def serve() -> None:
        runners.append(await serve_ops(registry, with_assignment(app, service.ready), host, port))


def run_worker(app: faust.App, settings: ServiceSettings, topics: Sequence[TopicSpec] = ()) -> None:
    """Runs the Faust worker in this process (``python -m services.<name>``), at ``LOG_LEVEL``,
    after creating the service's own ``topics`` (its retry or park topic): created before the
    consumer subscribes, so their appearance causes no rebalance."""
    if topics:
        asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, topics,
                                  replication_factor=settings.kafka_replication_factor))  # fmt: skip
    sys.argv = [sys.argv[0], "worker", "--loglevel", faust_loglevel(settings.log_level), "--without-web"]
    use_event_loop(settings)

    @app.task  # type: ignore[untyped-decorator]
    async def settle() -> None:
        await settle_once(lambda: consumer_ready(app), settings.gc_young_threshold)

    app.main()


def use_event_loop(settings: ServiceSettings) -> None:
    """The loop Faust's worker creates (it asks the policy for one when it starts): uvloop
    unless ``WORKER_UVLOOP=false``."""
    policy = uvloop.EventLoopPolicy() if settings.worker_uvloop else asyncio.DefaultEventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
