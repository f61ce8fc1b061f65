"""Ingest runs in-process (ASGI transport, real lifespan) against the session broker and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import make_consumer, topic_partitions
from schemas.assignment_response.v1 import AssignmentResponse
from schemas.codec import decode
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.person_erased.v1 import PersonErased
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.ingest.app import create_app
from services.ingest.bootstrap import build_deps
from services.ingest.config import IngestSettings

ROOT = Path(__file__).resolve().parents[3]


async def clear_of_minute_end(margin_s: float = 10.0) -> None:
    """Ingest's rate limits count in fixed minutes on the clock (``RedisStore.hit``): hits made
    across a minute's end are counted apart. A test that counts hits calls this first: when under
    ``margin_s`` of the minute is left, it waits for the next one."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await asyncio.sleep(left + 0.1)


def random_ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
def ingest_settings(tmp_path: Path, registry_topics: str, redis_url: str) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap_servers=registry_topics,
        redis_url=redis_url,
        leadpipe_state_dir=tmp_path / "state",
        ingest_publish_timeout_s=2.0,
    )


@contextmanager
def running_ingest(work_dir: Path, bootstrap: str, redis_url: str) -> Iterator[str]:
    """The real ``python -m services.ingest`` process on a free port; yields its URL."""
    port = free_port()
    log = work_dir / "ingest.log"
    proc = ManagedProcess(
        "ingest",
        [sys.executable, "-m", "services.ingest"],
        log,
        env={
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis_url,
            "LEADPIPE_STATE_DIR": str(work_dir / "state"),
            "INGEST_PORT": str(port),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        },
        cwd=ROOT,
    ).start()
    try:
        wait_for_port(port, timeout_s=30, proc=proc.proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        assert b"Traceback" not in log.read_bytes()


class Ingest:
    def __init__(self, client: httpx.AsyncClient, registry: CollectorRegistry, settings: IngestSettings):
        self.client = client
        self.registry = registry
        self.settings = settings

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def published(self) -> float:
        """Events counted as published (acked or spooled), of every type and source."""
        return sum(
            s.value
            for m in self.registry.collect()
            if m.name == "leadpipe_ingest_events_published"
            for s in m.samples
            if s.name.endswith("_total")
        )


#: Every topic ingest writes to.
INGEST_TOPICS = [p.topic() for p in (LeadCaptured, LeadEngagement, AssignmentResponse, PersonErasureRequested,
                                     PersonErased)]  # fmt: skip


async def end_offsets(bootstrap: str) -> dict[Any, int]:
    settings = IngestSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused")
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = [tp for found in (await topic_partitions(consumer, INGEST_TOPICS)).values() for tp in found]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def nothing_published(ingest: Ingest) -> AsyncIterator[None]:
    """The block published nothing: no new record on any topic ingest writes to (read from the
    broker), nothing spooled, no publish counted. Tests run one at a time on the session broker."""
    bootstrap = ingest.settings.kafka_bootstrap_servers
    before, counted = await end_offsets(bootstrap), ingest.published()
    yield
    assert ingest.published() == counted, "an event was published"
    assert ingest.metric("leadpipe_ingest_spool_depth") == 0, "an event was spooled"
    after = await end_offsets(bootstrap)
    assert after == before, (
        f"records were published: {[(tp, before.get(tp), n) for tp, n in after.items() if n != before.get(tp)]}"
    )


@pytest.fixture
async def ingest(ingest_settings: IngestSettings) -> AsyncIterator[Ingest]:
    registry = CollectorRegistry()
    app = create_app(ingest_settings, build_deps(ingest_settings, registry))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(random_ip(), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield Ingest(client, registry, ingest_settings)


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record now on ``topic``, decoded."""
    return await read_events(bootstrap, topic, None, timeout_s=10.0)


async def read_events(bootstrap: str, topic: str, event_ids: set[str] | None, timeout_s: float = 20.0) -> list[Any]:
    """Every record on ``topic`` whose ce_id is in ``event_ids`` (all if None; duplicates included), decoded."""
    settings = IngestSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused")
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        tps = (await topic_partitions(consumer, [topic]))[topic]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(tps)
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batches.values():
                for rec in records:
                    ce_id = dict(rec.headers).get("ce_id", b"").decode()
                    if event_ids is None or ce_id in event_ids:
                        found.append(decode(rec.value, rec.headers))
            caught_up = all([await consumer.position(tp) >= ends[tp] for tp in tps])
            if caught_up and (event_ids is None or {e.id for e in found} >= event_ids):
                break
    finally:
        await consumer.stop()
    return found
