"""The lifecycle every consumer service shares; each service's ``bootstrap.py`` subclasses it.

``ConsumerService.start`` (called by the worker's agents and tasks; it runs once) takes logging
back from Faust, opens the service's one Redis client and its one producer (every output goes
through ``publisher``, a ``KafkaPublisher`` over that producer), makes the ``EventProcessor``
and then calls the service's ``build``: its adapters and handlers. ``stop`` closes them again;
``ready`` is what ``/readyz`` answers (with ``kafka_assigned`` added by the worker).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, TypeVar

from redis.asyncio import Redis

from leadpipe.runtime.faust_compat import take_back_logging
from leadpipe.runtime.health import redis_reachable
from leadpipe.runtime.kafka import ensure_topics, make_producer
from leadpipe.runtime.keystore import close_keyring
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import KafkaPublisher
from leadpipe.runtime.redis_client import redis_client
from leadpipe.runtime.settings import ServiceSettings
from leadpipe.runtime.stream import EventProcessor
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


def started(part: T | None) -> T:
    """A part ``ConsumerService.start`` builds, refused (clearly) before it ran."""
    if part is None:
        raise RuntimeError("the service is not started yet: start() builds this part")
    return part


def park_topic_spec(name: str, partitions: int) -> TopicSpec:
    """A service's park topic (``stream.NotYet``): keyed as the parked records, kept a week."""
    return TopicSpec(name, "same as the parked record", partitions, retention_ms=7 * 24 * 3600 * 1000)


class ConsumerService:
    """Subclasses set ``service`` and implement ``build`` (and ``close`` if they own more clients)."""

    service = "consumer"
    #: Extra options of the service's producer (``make_producer``) and Redis client.
    producer_options: ClassVar[dict[str, Any]] = {}
    redis_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, settings: ServiceSettings, stage: StageMetrics):
        self.settings = settings
        self.stage = stage
        self.started = asyncio.Event()
        self._lock = asyncio.Lock()
        self._redis: Redis[bytes] | None = None
        self._producer: Any = None
        self._publisher: KafkaPublisher | None = None
        self._events: EventProcessor | None = None

    # -- what build() and the agents use ---------------------------------------------------
    @property
    def redis(self) -> Redis[bytes]:
        return started(self._redis)

    @property
    def producer(self) -> Any:
        return started(self._producer)

    @property
    def publisher(self) -> KafkaPublisher:
        return started(self._publisher)

    @property
    def events(self) -> EventProcessor:
        return started(self._events)

    def park_topic(self) -> str | None:
        """The service's park topic (``stream.NotYet``), created at start; None: it parks nothing."""
        return None

    def topic_for(self, name: str) -> str:
        """The topic an event of catalog topic ``name`` is published to (a service may rename)."""
        return name

    async def build(self) -> None:
        """Builds the service's adapters and handlers (clients are open; Redis may need a rebuild)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Closes what ``build`` opened beyond Redis and the producer."""

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._lock:
            if self.started.is_set():
                return
            s = self.settings
            take_back_logging(self.service, level=s.log_level, json_logs=s.log_json)
            self._redis = redis_client(s.redis_url, autopipeline=s.redis_autopipeline, **self.redis_options)
            self._producer = make_producer(s, **self.producer_options)
            await self._producer.start()
            self._publisher = KafkaPublisher(self._producer, metrics=self.stage, topic_for=self.topic_for,
                                             max_record_bytes=s.kafka_max_record_bytes)  # fmt: skip
            park = self.park_topic()
            if park is not None:  # made by ``run_worker`` already, unless started another way
                await ensure_topics(s.kafka_bootstrap_servers, [park_topic_spec(park, s.kafka_partitions)],
                                    replication_factor=s.kafka_replication_factor)  # fmt: skip
            self._events = EventProcessor(service=self.service, metrics=self.stage, publisher=self._publisher,
                                          park_topic=park, park_for_s=s.consumer_park_for_s)  # fmt: skip
            await self.build()
            self.started.set()
            log.info("%s started", self.service)

    async def stop(self) -> None:
        self.started.clear()
        await self.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._redis is not None:
            await self._redis.aclose()  # type: ignore[attr-defined]
            self._redis = None
        await close_keyring()  # its asyncio client lives in this loop (reopened on next use)

    async def ready(self) -> dict[str, bool]:
        return {
            "redis": await redis_reachable(self._redis),
            "kafka_producer": self._producer is not None,
            "agent": self.started.is_set(),
        }
