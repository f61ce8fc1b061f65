"""The Redis store and the handler's read-decide-publish-write loop against a real Redis, with
list-backed publisher and state log (the same Protocols the worker wires to Kafka)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from schemas.envelope import Envelope
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.domain.engine import Nurture
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.routing import parse_directory
from services.nurture.domain.state import LeadState
from services.nurture.handlers import Links, NurtureHandler
from tests.fakes import FakePublisher
from tests.integration.nurture.harness import scored, write_config


class ListPublisher(FakePublisher):
    def __init__(self) -> None:
        super().__init__()
        self.before_first: Any = None

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        if self.before_first is not None:
            hook, self.before_first = self.before_first, None
            await hook()
        await super().publish(events)


class ListLog:
    def __init__(self) -> None:
        self.states: list[LeadState] = []

    async def append(self, state: LeadState) -> None:
        self.states.append(state)

    async def flush(self) -> None:
        return None


def handler(redis: Redis, prefix: str, tmp: Path, capacity: int = 5) -> tuple[NurtureHandler, ListPublisher, ListLog]:
    books, directory = write_config(tmp, capacity=capacity, reps=2)
    engine = Nurture(parse_playbooks(yaml.safe_load(books.read_text())),
                     parse_directory(yaml.safe_load(directory.read_text())))  # fmt: skip
    pub, log = ListPublisher(), ListLog()
    h = NurtureHandler(engine, RedisNurtureStore(redis, prefix), pub, log, NurtureMetrics(CollectorRegistry()),
                       Links("s", "http://x", 60))  # fmt: skip
    return h, pub, log


async def test_capacity_is_never_exceeded_by_concurrent_reservations(redis_url: str):
    redis = Redis.from_url(redis_url)
    store = RedisNurtureStore(redis, f"nurture:{uuid.uuid4().hex[:8]}:")
    results = await asyncio.gather(
        *(store.reserve(f"ld_{n}", 1, "rep-0", "2026-05-04", 10, count=True) for n in range(50))
    )
    winner = results.index("rep-0")
    again = await store.reserve(f"ld_{winner}", 1, "rep-1", "2026-05-04", 10, count=True)
    loads = await store.loads([("rep-0", "2026-05-04")])
    await redis.aclose()
    assert results.count("rep-0") == 10 and results.count(None) == 40
    assert again == "rep-0"  # a (lead, attempt) keeps its first rep: another replica cannot assign it twice
    assert loads["rep-0"].used == 10


async def test_a_lost_state_race_is_decided_again_and_the_lead_is_assigned_once(redis_url: str, tmp_path: Path):
    redis = Redis.from_url(redis_url)
    prefix = f"nurture:{uuid.uuid4().hex[:8]}:"
    first, pub1, log1 = handler(redis, prefix, tmp_path)
    second, pub2, _ = handler(redis, prefix, tmp_path)
    lead = "ld_race"
    # While the first handler publishes, another replica handles the same lead and commits first.
    pub1.before_first = lambda: second.handle(scored(lead, grade="A", event_id="ev-b"))
    await first.handle(scored(lead, grade="A", event_id="ev-a"))
    state = await first.store.load(lead)
    await redis.aclose()
    assert state is not None and state.version == 2 and {"ev-a", "ev-b"} <= set(state.seen)
    assigned = {e.data.assignment_id for e in pub1.events + pub2.events if e.type.endswith("lead.assigned")}
    assert assigned == {f"{lead}.a1"} and state.attempts == 1
    assert first.metrics.conflicts._value.get() == 1  # type: ignore[attr-defined]
    assert log1.states[-1].version == 2


async def test_a_due_entry_for_a_vanished_lead_is_dropped(redis_url: str, tmp_path: Path):
    redis = Redis.from_url(redis_url)
    h, pub, _ = handler(redis, f"nurture:{uuid.uuid4().hex[:8]}:", tmp_path)
    await h.store.set_due("ld_gone", datetime(2020, 1, 1, tzinfo=UTC))
    assert await h.tick(lease_s=5, limit=10) == 1
    assert await redis.zscore(h.store.due_key, "ld_gone") is None and pub.events == []
    await redis.aclose()
