"""Ingest's rate limits against the session's real Redis: a form post's address and form windows
are counted in one round trip, in order, and an address over its own limit does not use up the
form's (one noisy sender must not lock a form for everyone)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bench.redis_trips import RoundTrips
from leadpipe.runtime.redis_client import redis_client
from services.ingest.adapters.redis_store import P, RedisStore
from tests.integration.ingest.conftest import clear_of_minute_end


@pytest.fixture
async def counted(redis_url: str) -> AsyncIterator[tuple[Redis[bytes], RoundTrips]]:
    trips = RoundTrips()
    client = redis_client(redis_url, connection_class=trips.connection_class())
    try:
        yield client, trips
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def test_an_address_over_its_limit_is_refused_without_counting_against_the_form(
    counted: tuple[Redis[bytes], RoundTrips],
) -> None:
    client, trips = counted
    store, form = RedisStore(client), f"form-{uuid.uuid4().hex[:8]}"
    noisy, other = f"10.0.0.{uuid.uuid4().int % 250}", "10.9.9.9"

    def limits(ip: str) -> list[tuple[str, str, int]]:
        return [("ip", ip, 3), ("form", form, 5)]

    await clear_of_minute_end()  # hits across a minute's end would be counted apart
    assert [await store.hit(limits(noisy)) for _ in range(6)] == [True] * 3 + [False] * 3
    # The noisy address's refused posts did not count against the form: two more fit.
    assert [await store.hit(limits(other)) for _ in range(3)] == [True, True, False]
    form_keys = [k async for k in client.scan_iter(match=f"{P}rl:form:{form}:*")]
    assert len(form_keys) == 1 and int(await client.get(form_keys[0]) or 0) == 6
    assert 60 < await client.ttl(form_keys[0]) <= 120  # kept two windows, then gone
    trips.reset()
    await store.hit(limits(f"10.8.8.{uuid.uuid4().int % 250}"))
    assert trips.count == 1  # both windows in one round trip
