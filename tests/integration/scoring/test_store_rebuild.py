"""The Redis side of a rebuild, on a real Redis: restore and the built marker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.scoring.adapters.redis_store import RedisLeadStore, dump_state, load_state
from tests.unit.scoring.leads import capture
from tests.unit.scoring.world import World


@pytest.fixture
async def store(redis_url: str, unique: str) -> AsyncIterator[RedisLeadStore]:
    redis = Redis.from_url(redis_url)
    try:
        yield RedisLeadStore(redis, f"scoring:{unique}:")
    finally:
        await redis.aclose()


async def test_a_restore_puts_back_states_links_and_model_but_never_overwrites_a_newer_key(store: RedisLeadStore):
    world = World()
    world.send(capture(email="ana@acme.com", phone="+44 20 7946 0000", country="GB", capture_id="c-ana"))
    world.send(capture(email="ben@acme.com", phone="+44 20 7946 0000", country="GB", capture_id="c-ben"))
    ana, ben = world.leads.values()
    newer = capture(email="ben@acme.com", capture_id="c-ben-2", title="CEO")
    world.send(newer)
    await store.put_leads([world.leads[ben.lead_id]])  # a worker that finished its rebuild moved Ben on

    assert await store.restore([dump_state(ana), dump_state(ben)], "fit-2026.2") == 1
    snap = await store.read(["email:ana@acme.com", "phone:+442079460000"])
    await store.abandon()
    assert snap.leads[ana.lead_id] == ana and snap.leads[ben.lead_id].job_title == "CEO"
    assert set(snap.links["phone:+442079460000"]) == {ana.lead_id, ben.lead_id}
    assert snap.model_version == "fit-2026.2" and not snap.built
    assert load_state(await store.redis.get(store.lead_key(ana.lead_id))).captures[0].capture_id == "c-ana"


async def test_the_built_marker_is_set_only_if_redis_was_not_wiped_again_during_the_rebuild(store: RedisLeadStore):
    await store.begin_rebuild("t-1")
    await store.redis.delete(store.rebuilding_key)  # wiped while the rebuild ran
    assert not await store.mark_built("t-1") and not await store.is_built()
    await store.begin_rebuild("t-2")
    assert await store.mark_built("t-2") and await store.is_built()


async def test_a_second_replica_does_not_start_a_rebuild_while_another_holds_it(store: RedisLeadStore):
    assert await store.begin_rebuild("replica-a")
    assert not await store.begin_rebuild("replica-b")  # it waits for replica-a's marker instead
    assert await store.mark_built("replica-a") and await store.is_built()
    assert await store.begin_rebuild("after-a-wipe")  # the lease went with the finished rebuild
