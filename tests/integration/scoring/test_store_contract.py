"""One contract for scoring's ``LeadStore`` port, run against the real Redis adapter and the fake
the handler unit tests use: what the handler relies on holds for both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from leadpipe.runtime.stream import BatchConflict
from services.scoring.adapters.redis_store import RedisLeadStore
from tests.unit.scoring.fakes import FakeLeadStore
from tests.unit.scoring.leads import capture
from tests.unit.scoring.world import World


@pytest.fixture(params=["redis", "fake"])
async def store(request: pytest.FixtureRequest, redis_url: str, unique: str) -> AsyncIterator[Any]:
    if request.param == "fake":
        yield FakeLeadStore()
        return
    redis = Redis.from_url(redis_url)
    try:
        yield RedisLeadStore(redis, f"scoring:{unique}:")
    finally:
        await redis.aclose()


def ana() -> tuple[World, Any]:
    world = World()
    world.send(capture(email="ana@acme.com", phone="+44 20 7946 0000", country="GB", capture_id="c-ana"))
    return world, next(iter(world.leads.values()))


async def test_a_written_snapshot_reads_back_by_any_of_its_identifiers(store: Any):
    world, lead = ana()
    snap = await store.read(["email:ana@acme.com"])
    assert snap.leads == {} and snap.links == {}
    snap.changed_leads, snap.changed_links = dict(world.leads), dict(world.links)
    await store.write(snap)
    by_email = await store.read(["email:ana@acme.com"])
    await store.abandon()
    by_phone = await store.read(["phone:+442079460000"])
    await store.abandon()
    assert by_email.leads == by_phone.leads == {lead.lead_id: lead}
    assert by_email.links == world.links  # the lead's phone link comes with it (a merge rewrites it)
    assert by_phone.links == {"phone:+442079460000": (lead.lead_id,)}


async def test_a_write_after_another_write_since_the_read_is_a_conflict(store: Any):
    world, _ = ana()
    first = await store.read(["email:ana@acme.com"])
    other = RedisLeadStore(store.redis, store.prefix) if isinstance(store, RedisLeadStore) else store
    if other is store:  # the fake has one keyspace: a second reader is the same object
        store.version += 1
    else:
        theirs = await other.read(["email:ana@acme.com"])
        theirs.changed_links = {"email:ana@acme.com": ("ld_other",)}
        await other.write(theirs)
    first.changed_leads = dict(world.leads)
    with pytest.raises(BatchConflict):
        await store.write(first)


async def test_an_erasure_deletes_the_lead_and_unlinks_its_identifiers(store: Any):
    world, lead = ana()
    snap = await store.read([])
    snap.changed_leads, snap.changed_links = dict(world.leads), dict(world.links)
    await store.write(snap)
    erased, links = await store.erase(["email:ana@acme.com"], [])
    after = await store.read(["email:ana@acme.com", "phone:+442079460000"])
    await store.abandon()
    assert erased == [lead.lead_id] and links == 2 and after.leads == {} and after.links == {}
