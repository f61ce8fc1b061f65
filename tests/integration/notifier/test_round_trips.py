"""How many Redis round trips a request costs the notifier (issue #13: socket writes were half
its CPU). Counted on the worker's wiring (a guarded ledger) against the session Redis; the
second request of each kind is counted, so the scripts are already loaded. Each count holds with
the worker's autopipelining client (``runtime.redis_client``) and without it: a request's trips
depend on one another, so a lone request's stay one after another; concurrent requests share them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from bench.redis_trips import RoundTrips
from leadpipe.runtime.redis_client import redis_client
from tests.integration.notifier.helpers import outcomes, request

OUT = "notification.outcome.v1"
RETRY = "notification.retry.v1"


@pytest.fixture(params=[True, False], ids=["autopipeline", "plain"])
async def counted(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Redis[bytes], RoundTrips]]:
    trips = RoundTrips()
    client = redis_client(redis_url, autopipeline=request.param, connection_class=trips.connection_class())
    try:
        yield client, trips
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def _guarded(make_harness: Any, client: Redis[bytes]) -> Any:
    h = make_harness(rebuildable=True, client=client, notifier_email_transport="outbox")
    await client.set(f"{h.settings.notifier_redis_prefix}meta:built", "1")
    return h


@pytest.mark.parametrize("audience", ["rep", "lead"])
async def test_a_sent_request_costs_four_round_trips_read_claim_record_published(
    make_harness: Any, counted: tuple[Redis[bytes], RoundTrips], audience: str
) -> None:
    client, trips = counted
    h = await _guarded(make_harness, client)
    address = "dana@example.com" if audience == "lead" else "ana@sales.example"
    await h.notifier.on_request(*request(audience=audience, address=address))  # loads the scripts
    trips.reset()
    await h.notifier.on_request(*request(audience=audience, address=address))
    # One read (ledger entry, built marker, and for a lead the suppression and erased lists), the
    # claim with its recipient-limit slot, the terminal write, and the published flag after Kafka.
    assert trips.count == 4
    assert [o.status for o in outcomes(h.sink.on(OUT))] == ["sent", "sent"]


async def test_a_redelivered_request_already_published_costs_one_round_trip(
    make_harness: Any, counted: tuple[Redis[bytes], RoundTrips]
) -> None:
    client, trips = counted
    h = await _guarded(make_harness, client)
    event, msg = request(audience="lead", address="dana@example.com")
    await h.notifier.on_request(event, msg)
    trips.reset()
    await h.notifier.on_request(event, msg)
    assert trips.count == 1
    assert len(h.sink.on(OUT)) == 1


async def test_a_suppressed_lead_read_in_the_same_round_trip_is_still_refused(
    make_harness: Any, counted: tuple[Redis[bytes], RoundTrips]
) -> None:
    client, trips = counted
    h = await _guarded(make_harness, client)
    await h.notifier.on_request(*request(audience="lead", address="dana@example.com"))
    await client.set(h.notifier.suppression.key("email", "dana@example.com"), "unsubscribed")
    trips.reset()
    await h.notifier.on_request(*request(audience="lead", address=" Dana@Example.com"))
    assert trips.count == 3  # the read, the terminal write, the published flag
    last = outcomes(h.sink.on(OUT))[-1]
    assert last.status == "suppressed" and last.error == "address suppressed: unsubscribed"


async def test_a_deferred_request_costs_three_round_trips_read_mark_requested_backlog(
    make_harness: Any, counted: tuple[Redis[bytes], RoundTrips]
) -> None:
    client, trips = counted
    h = await _guarded(make_harness, client)
    later = datetime.now(UTC) + timedelta(minutes=5)
    await h.notifier.on_request(*request(audience="lead", address="dana@example.com", not_before=later))
    trips.reset()
    event, msg = request(audience="lead", address="dana@example.com", not_before=later)
    await h.notifier.on_request(event, msg)
    assert trips.count == 3
    assert len(h.sink.on(RETRY)) == 2 and h.sink.on(OUT) == []
    assert (await h.notifier.ledger.get(event.data.notification_id)).state == "requested"


async def test_concurrent_requests_share_their_round_trips_when_autopipelined(
    make_harness: Any, redis_url: str
) -> None:
    trips = RoundTrips()
    client = redis_client(redis_url, autopipeline=True, connection_class=trips.connection_class())
    try:
        h = await _guarded(make_harness, client)
        # loads the scripts and opens the pool's connections (their handshakes are not counted)
        await asyncio.gather(*(h.notifier.on_request(*request()) for _ in range(10)))
        trips.reset()
        await asyncio.gather(*(h.notifier.on_request(*request()) for _ in range(10)))
        # alone, each costs 4 (above), 40 in all. In step, the three script calls of the ten share
        # a pipeline per step; the read is an explicit pipeline (its own path): 10 trips
        assert trips.count < 20, trips.count
        assert [o.status for o in outcomes(h.sink.on(OUT))] == ["sent"] * 20
    finally:
        await client.aclose()  # type: ignore[attr-defined]
