"""Start the real ``python -m services.scoring`` process on private topics and read its output."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import new_topic
from schemas.codec import Record, decode, encode
from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Topics:
    captured: str
    engagement: str
    scored: str

    @property
    def state(self) -> str:
        return f"{self.scored}.state"

    @property
    def all(self) -> list[str]:
        return [self.captured, self.engagement, self.scored, f"{self.captured}.dlq", f"{self.engagement}.dlq"]


async def create_topics(bootstrap: str, names: list[str], partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [new_topic(n, partitions if not n.endswith(".dlq") else 1) for n in names if n not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


def worker(bootstrap: str, redis_url: str, unique: str, topics: Topics, state_dir: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "LEADPIPE_STATE_DIR": str(state_dir),
        "OPS_PORT": str(port),
        "SCORING_GROUP_ID": f"scoring-{unique}",
        "SCORING_REDIS_PREFIX": f"scoring:{unique}:",
        "SCORING_INPUT_TOPICS": f"{topics.captured},{topics.engagement}",
        "SCORING_OUTPUT_TOPIC": topics.scored,
        "SCORING_STATE_TOPIC": topics.state,
        "KAFKA_PARTITIONS": "3",
        "LOG_LEVEL": os.environ.get("SCORING_TEST_LOG_LEVEL", "WARNING"),
    }
    proc = ManagedProcess(
        "scoring", [sys.executable, "-m", "services.scoring"], state_dir / "scoring.log", env=env, cwd=REPO
    )
    proc.start()
    wait_for_port(port, timeout_s=30, proc=proc.proc)
    return proc, port


async def wait_ready(port: int, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            r = await client.get(f"http://127.0.0.1:{port}/readyz")
            if r.status_code == 200 or time.monotonic() > deadline:
                return dict(r.json())
            await asyncio.sleep(0.2)


async def metrics_text(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


def capture_event(email: str | None, *, phone: str | None = None, id: str | None = None, synthetic: bool = False,
                  **extra: Any) -> Envelope[LeadCaptured]:  # fmt: skip
    data = LeadCaptured.model_validate(
        {
            "capture_id": id or f"cap-{email}-{phone}",
            "source_kind": "web_form",
            "captured_at": "2026-05-04T09:30:00Z",
            "identity": {"email": email, "phone": phone},
            "person": {"job_title": extra.pop("title", "Director of Operations"), "country": "US"},
            **extra,
        }
    )
    return new_event(data, source="/tests", subject=f"k-{email or phone}", id=id, synthetic=synthetic)


def engagement_event(email: str, kind: str, *, id: str | None = None) -> Envelope[LeadEngagement]:
    data = LeadEngagement.model_validate(
        {
            "engagement_id": id or f"eng-{email}-{kind}",
            "kind": kind,
            "occurred_at": datetime.now(UTC),
            "identity": {"email": email},
        }
    )
    return new_event(data, source="/tests", subject=f"k-{email}", id=id)


async def produce(bootstrap: str, items: list[tuple[str, Envelope[Any] | Record]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for topic, item in items:
            rec = item if isinstance(item, Record) else encode(item)
            futures.append(await producer.send(topic, rec.value, key=rec.key, headers=rec.headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Reader:
    """Reads a topic from the beginning, accumulating decoded events (or raw records)."""

    def __init__(self, bootstrap: str, topic: str, raw: bool = False):
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        self.raw = raw
        self.items: list[Any] = []

    async def __aenter__(self) -> Reader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def until(self, predicate: Any, timeout_s: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.items):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; have {len(self.items)} records")
            batch = await self.consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    headers = list(m.headers or [])
                    self.items.append(
                        Record(m.key or b"", m.value or b"", headers) if self.raw else decode(m.value, headers)
                    )
        return self.items
