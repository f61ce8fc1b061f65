"""Builds the ingest service once: settings in, adapters and the route dependencies out.

``create_app`` (app.py) only assembles routes; the routes reach these through
``services.ingest.checks.get_deps``. Tests build their own (fresh registry, own spool) with
``build_deps``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from leadpipe.runtime.kafka import make_consumer, make_producer
from leadpipe.runtime.redis_client import redis_client
from services.ingest.adapters.metrics import IngestMetrics
from services.ingest.adapters.publisher import Publisher
from services.ingest.adapters.redis_store import RedisStore
from services.ingest.adapters.spool import SqliteSpool
from services.ingest.config import IngestSettings
from services.ingest.domain.forms import FormConfig


def load_forms(directory: Path) -> dict[str, FormConfig]:
    forms: dict[str, FormConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        config = FormConfig.from_mapping(yaml.safe_load(path.read_text()))
        forms[config.id] = config
    return forms


@dataclass
class IngestDeps:
    """Everything the routes talk to; tests build their own (fresh registry, own spool)."""

    settings: IngestSettings
    publisher: Publisher
    store: RedisStore
    metrics: IngestMetrics
    forms: dict[str, FormConfig]
    redis: Redis[bytes]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def build_deps(settings: IngestSettings, registry: CollectorRegistry | None = None) -> IngestDeps:
    metrics = IngestMetrics(registry or CollectorRegistry())
    redis = redis_client(
        settings.redis_url, autopipeline=settings.redis_autopipeline, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    timeout_ms = int(settings.ingest_publish_timeout_s * 1000)
    publisher = Publisher(
        # request_timeout bounds how long a batch may wait for the broker before it fails and
        # is spooled: aiokafka never sends an expired batch later, so it is spooled only once.
        # Not idempotent: aiokafka's idempotent producer keeps retrying a batch it has started
        # instead of failing it at the timeout (measured: with the broker cut, 2 requests in 3 s
        # instead of ~130, nothing spooled), and a 202 must not wait on the broker. Exactly-once
        # on the topic comes from the spool instead: a failed send is marked maybe-sent and
        # looked up on the topic before it is replayed.
        make_producer(settings, request_timeout_ms=timeout_ms, metadata_max_age_ms=30_000, enable_idempotence=False),
        SqliteSpool(settings.spool_path),
        metrics,
        consumer_factory=lambda: make_consumer(settings, group_id=None, enable_auto_commit=False),
    )
    return IngestDeps(settings, publisher, RedisStore(redis), metrics, load_forms(settings.ingest_forms_dir), redis)
