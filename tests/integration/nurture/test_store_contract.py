"""One contract for nurture's ``NurtureStore`` port, run against the real Redis adapter and the
fake the handler unit tests use."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.domain.state import LeadState
from tests.unit.nurture.builders import MONDAY_10_NY, engine, scored
from tests.unit.nurture.fakes import FakeNurtureStore


@pytest.fixture(params=["redis", "fake"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    if request.param == "fake":
        yield FakeNurtureStore()
        return
    redis = Redis.from_url(redis_url)
    try:
        yield RedisNurtureStore(redis, f"nurture:{uuid.uuid4().hex[:8]}:")
    finally:
        await redis.aclose()


def a_lead(lead_id: str = "ld_1") -> LeadState:
    d = engine().on_scored(None, "ev-1", scored(lead_id), MONDAY_10_NY)
    d.state.version = 1
    return d.state


async def test_a_save_is_a_compare_and_set_on_the_version(store: Any):
    state = a_lead()
    assert await store.save(state, 0, None)
    assert not await store.save(state, 0, None)  # someone else already wrote version 1
    loaded = await store.load("ld_1")
    assert loaded is not None and loaded.version == 1 and await store.load("ld_2") is None
    states, _ = await store.load_many_checked(["ld_1", "ld_2"])
    assert states["ld_1"] == loaded and states.get("ld_2") is None


async def owner_of(store: Any, domain: str) -> str | None:
    _, owners = await store.routing_view([], [domain])
    return owners[domain]


async def test_the_owner_claim_and_stage_counts_move_with_a_save_and_only_with_it(store: Any):
    state = a_lead()
    moves = [(None, "new"), ("new", "mql")]
    assert await store.save(state, 0, None, owner_claim=("example.com", "rep-1"), moves=moves)
    assert await store.stage_counts() == {"new": 0, "mql": 1}
    assert await owner_of(store, "example.com") == "rep-1"
    # A lost compare-and-set counts nothing and claims nothing.
    assert not await store.save(state, 0, None, owner_claim=("other.com", "rep-2"), moves=[("mql", "sql")])
    assert await store.stage_counts() == {"new": 0, "mql": 1}
    assert await owner_of(store, "other.com") is None
    # A domain keeps its first owner.
    state.version = 2
    assert await store.save(state, 1, None, owner_claim=("example.com", "rep-9"), moves=[("mql", "sql")])
    assert await owner_of(store, "example.com") == "rep-1"
    assert await store.stage_counts() == {"new": 0, "mql": 0, "sql": 1}


async def test_the_routing_view_reads_the_loads_and_the_owners_of_several_domains_at_once(store: Any):
    state = a_lead()
    assert await store.save(state, 0, None, owner_claim=("example.com", "rep-1"))
    assert await store.reserve("ld_1", 1, "rep-2", "2026-05-04", 10, count=True) == "rep-2"
    loads, owners = await store.routing_view([("rep-1", "2026-05-04"), ("rep-2", "2026-05-04")],
                                             ["example.com", "nobody.io"])  # fmt: skip
    assert owners == {"example.com": "rep-1", "nobody.io": None}
    assert loads["rep-1"].used == 0 and loads["rep-2"].used == 1
    assert (await store.routing_view([], []))[1] == {}


async def test_a_due_lead_is_claimed_once_per_lease(store: Any):
    due = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
    await store.save(a_lead(), 0, due)
    now = due.timestamp() + 1
    assert await store.claim_due(now, 30, 10) == ["ld_1"]
    assert await store.claim_due(now, 30, 10) == []
    assert await store.claim_due(now + 31, 30, 10) == ["ld_1"]


async def test_a_rep_is_never_reserved_beyond_capacity_and_an_attempt_keeps_its_rep(store: Any):
    day = "2026-05-04"
    assert await store.reserve("ld_1", 1, "rep-0", day, 1, count=True) == "rep-0"
    assert await store.reserve("ld_2", 1, "rep-0", day, 1, count=True) is None
    assert await store.reserve("ld_1", 1, "rep-1", day, 1, count=True) == "rep-0"
    assert (await store.loads([("rep-0", day)]))["rep-0"].used == 1
    await store.release("rep-0", day)
    assert (await store.loads([("rep-0", day)]))["rep-0"].used == 0


async def test_an_erased_lead_is_gone_with_its_due_time(store: Any):
    await store.save(a_lead(), 0, datetime(2026, 5, 4, 14, 0, tzinfo=UTC))
    assert await store.erase("ld_1") >= 1
    assert await store.load("ld_1") is None and await store.claim_due(2e9, 30, 10) == []
