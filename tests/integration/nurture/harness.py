"""Run the real ``python -m services.nurture`` on private topics (a per-test prefix) with test
playbooks and a test sales directory whose windows are always open, and read what it emits."""

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
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import new_topic, topic_partitions
from schemas.codec import decode, encode
from schemas.envelope import Envelope, new_event
from schemas.lead_scored.v1 import LeadScored
from tests.support.zones import zone_at_midday

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "services" / "nurture" / "config"
ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "23:59:59.999999"}
INPUTS = ("lead.scored.v1", "notification.outcome.v1", "assignment.response.v1", "lead.outcome_logged.v1")
OUTPUTS = ("lead.stage_changed.v1", "lead.assigned.v1", "notification.requested.v1")


@dataclass
class Setup:
    prefix: str
    playbooks: Path
    directory: Path

    def t(self, name: str) -> str:
        return f"{self.prefix}{name}"


def write_config(
    tmp: Path, *, capacity: int = 50, reps: int = 3, second_step_s: float = 3.0, zone: str | None = None
) -> tuple[Path, Path]:
    """Playbooks with always-open windows and a grade-B cadence a few seconds apart; a directory
    of ``reps`` US reps (24/7 working hours) with ``capacity`` each, and a manager. The reps' time
    zone is ``zone``, else one where it is midday now (``zone_at_midday``): capacity counts per
    local day, and a test on the real clock must not see it start again at midnight."""
    books = yaml.safe_load((CONFIG / "playbooks.yaml").read_text())
    books["policy"]["sending_window"] = ALWAYS
    books["policy"]["frequency_cap_per_week"] = 50
    day = 1 / 86400
    for pb in books["playbooks"]:
        if pb["id"] == "grade_b":
            pb["steps"] = [
                {"day": 0, "template": "nurture_content", "topic": "a"},
                {"day": second_step_s * day, "template": "nurture_content", "topic": "b"},
                {"day": 2 * second_step_s * day, "template": "nurture_content", "topic": "c"},
            ]
            pb["repeat"] = None
    directory = {
        "version": "test",
        "managers": [{"id": "mgr", "name": "Manager Mo", "alert": {"channel": "email", "address": "mo@sales.test"}}],
        "reps": [
            {"id": f"rep-{i}", "name": f"Rep {i}", "territories": ["US"], "languages": ["en"], "daily_capacity": capacity,
             "timezone": zone or zone_at_midday(), "working_hours": ALWAYS, "manager": "mgr",
             "alert": {"channel": "email", "address": f"rep{i}@sales.test"}}
            for i in range(reps)
        ],
    }  # fmt: skip
    pb_path, dir_path = tmp / "playbooks.yaml", tmp / "sales_team.yaml"
    pb_path.write_text(yaml.safe_dump(books))
    dir_path.write_text(yaml.safe_dump(directory))
    return pb_path, dir_path


async def create_topics(bootstrap: str, setup: Setup, partitions: int = 6) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [setup.t(n) for n in (*INPUTS, *OUTPUTS)] + [setup.t(n) + ".dlq" for n in INPUTS]
        await admin.create_topics([new_topic(n, 1 if n.endswith(".dlq") else partitions) for n in names])
    finally:
        await admin.close()


def start_worker(
    bootstrap: str, redis_url: str, unique: str, setup: Setup, state_dir: Path, name: str = "nurture", **env: str
) -> tuple[ManagedProcess, int]:
    port = free_port()
    full_env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "LEADPIPE_STATE_DIR": str(state_dir / name),
        "OPS_PORT": str(port),
        "NURTURE_GROUP_ID": f"nurture-{unique}",
        "NURTURE_REDIS_PREFIX": f"nurture:{unique}:",
        "NURTURE_TOPIC_PREFIX": setup.prefix,
        "NURTURE_PLAYBOOKS_PATH": str(setup.playbooks),
        "NURTURE_DIRECTORY_PATH": str(setup.directory),
        "NURTURE_CHECK_INTERVAL_S": "1",
        "LOG_LEVEL": os.environ.get("NURTURE_TEST_LOG_LEVEL", "WARNING"),
    } | env
    proc = ManagedProcess(name, [sys.executable, "-m", "services.nurture"], state_dir / f"{name}.log", env=full_env,
                          cwd=REPO)  # fmt: skip
    proc.start()
    wait_for_port(port, timeout_s=30, proc=proc.proc)
    return proc, port


async def wait_ready(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            r = await client.get(f"http://127.0.0.1:{port}/readyz")
            if r.status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"worker on {port} not ready: {r.text}")


async def metrics_text(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


def scored(lead_id: str, *, grade: str = "A", kind: str | None = None, event_id: str | None = None,
           synthetic: bool = False, country: str = "US", score: float | None = None,
           consent: tuple[str, ...] = ("email",)) -> Envelope[LeadScored]:  # fmt: skip
    now = datetime.now(UTC)
    data = LeadScored.model_validate(
        {
            "lead_id": lead_id, "scored_at": now, "model_version": "m1", "fit_score": 50, "engagement_score": 10,
            "score": score if score is not None else 80 if grade == "A" else 50, "grade": grade,
            "reasons": [{"rule_id": "r1", "description": "Director-level title", "points": 15, "component": "fit"}],
            "profile": {"email": f"{lead_id}@lead.test", "full_name": "Dana Lee", "company": "Acme",
                        "country": country, "timezone": "UTC", "language": "en"},
            "capture": {"source_kind": "web_form", "first_captured_at": now, "last_captured_at": now},
            "consent": {"channels": list(consent), "given_at": now},
            "trigger": {"event_id": "x", "event_type": "lead.engagement" if kind else "lead.captured",
                        "engagement_kind": kind},
        }
    )  # fmt: skip
    return new_event(data, source="/tests", subject=lead_id, id=event_id, synthetic=synthetic)


async def produce(bootstrap: str, items: list[tuple[str, Envelope[Any] | tuple[bytes, bytes, list[Any]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        futures = []
        for topic, item in items:
            if isinstance(item, Envelope):
                rec = encode(item)
                futures.append(await producer.send(topic, rec.value, key=rec.key, headers=rec.headers))
            else:
                key, value, headers = item
                futures.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Reader:
    """Reads topics from the beginning, keeping decoded events with the time they were seen."""

    def __init__(self, bootstrap: str, *topics: str, assign: bool = False):
        """``assign``: every partition of ``topics`` assigned at once and read from its start,
        instead of a subscription (which learns its partitions from a later metadata update: in
        one CI run a dead-letter reader so subscribed read nothing for 30 s, though the record
        was on the topic 15 ms after the test produced its input)."""
        self.topics = topics if assign else ()
        self.consumer = AIOKafkaConsumer(*(() if assign else topics), bootstrap_servers=bootstrap, group_id=None,
                                         auto_offset_reset="earliest")  # fmt: skip
        self.items: list[tuple[str, Envelope[Any], float]] = []

    async def __aenter__(self) -> Reader:
        await self.consumer.start()
        if self.topics:
            partitions = await topic_partitions(self.consumer, self.topics)
            if missing := [t for t, tps in partitions.items() if not tps]:
                await self.consumer.stop()
                raise RuntimeError(f"Reader: no such topic {missing} (create it first)")
            tps = [tp for tps in partitions.values() for tp in tps]
            self.consumer.assign(tps)
            await self.consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    def of(self, topic_suffix: str) -> list[Envelope[Any]]:
        return [e for t, e, _ in self.items if t.endswith(topic_suffix)]

    async def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._once()

    async def _once(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=50)
        for tp, msgs in batch.items():
            for m in msgs:
                self.items.append((tp.topic, decode(m.value, list(m.headers or [])), time.monotonic()))

    async def until(self, predicate: Any, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met; have {len(self.items)} records")
            await self._once()
