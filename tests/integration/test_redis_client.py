"""Automatic pipelining (``leadpipe.runtime.redis_client``) on a real Redis: commands awaited in
one tick go as one packed write with the replies a plain client gets; errors, cancellation,
blocking commands, transactions and connection failures each reach only whom they should."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bench.redis_trips import RoundTrips
from leadpipe.devstack.processes import free_port
from leadpipe.runtime.redis_client import AutoPipelineRedis, goes_direct, redis_client


@pytest.fixture
def trips() -> RoundTrips:
    return RoundTrips()


@pytest.fixture
async def auto(redis_url: str, trips: RoundTrips) -> AsyncIterator[Redis[bytes]]:
    client = redis_client(redis_url, connection_class=trips.connection_class())
    assert isinstance(client, AutoPipelineRedis)
    await client.ping()  # the connection's handshake is not what the tests count
    trips.reset()
    yield client
    await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def plain(redis_url: str) -> AsyncIterator[Redis[bytes]]:
    client = redis_client(redis_url, autopipeline=False)
    assert not isinstance(client, AutoPipelineRedis)
    yield client
    await client.aclose()  # type: ignore[attr-defined]


async def everything(r: Redis[bytes], k: str, *, concurrently: bool) -> list[Any]:
    """Fifty commands of the kinds the services send, with their response callbacks (at once,
    or one after another: a plain client's concurrent commands race on their connections)."""
    calls: list[Any] = []
    for i in range(5):
        calls += [
            r.set(f"{k}:s{i}", f"v{i}", ex=60),
            r.get(f"{k}:s{i}"),
            r.mget([f"{k}:s{i}", f"{k}:none"]),
            r.hset(f"{k}:h{i}", mapping={"a": "1", "b": "2"}),
            r.hgetall(f"{k}:h{i}"),
            r.hget(f"{k}:h{i}", "a"),
            r.exists(f"{k}:s{i}"),
            r.incrby(f"{k}:n{i}", 3),
            r.zadd(f"{k}:z{i}", {"m": 1.5}),
            r.zrange(f"{k}:z{i}", 0, -1, withscores=True),
        ]
    if concurrently:
        return list(await asyncio.gather(*calls))
    return [await call for call in calls]


async def test_fifty_concurrent_commands_are_one_round_trip_with_a_plain_clients_results(
    auto: Redis[bytes], plain: Redis[bytes], trips: RoundTrips, unique: str
):
    batched = await everything(auto, f"ap-{unique}-a", concurrently=True)
    assert trips.count == 1
    assert batched == await everything(plain, f"ap-{unique}-b", concurrently=False)
    assert batched[4] == {b"a": b"1", b"b": b"2"} and batched[9] == [(b"m", 1.5)]


async def test_commands_awaited_one_after_another_stay_one_round_trip_each(
    auto: Redis[bytes], trips: RoundTrips, unique: str
):
    await auto.set(f"ap-{unique}", "1")
    assert await auto.get(f"ap-{unique}") == b"1"
    assert trips.count == 2


async def test_a_commands_error_reaches_only_its_caller(auto: Redis[bytes], trips: RoundTrips, unique: str):
    await auto.set(f"ap-{unique}:str", "x")
    trips.reset()
    results = await asyncio.gather(
        auto.get(f"ap-{unique}:str"),
        auto.hget(f"ap-{unique}:str", "f"),  # WRONGTYPE
        auto.eval("return redis.call('NOPE')", 0),  # a Lua error
        auto.evalsha("0" * 40, 0),  # NOSCRIPT
        auto.incr(f"ap-{unique}:n"),
        return_exceptions=True,
    )
    assert trips.count == 1
    assert results[0] == b"x" and results[4] == 1
    assert isinstance(results[1], redis.exceptions.ResponseError) and "WRONGTYPE" in str(results[1])
    assert isinstance(results[2], redis.exceptions.ResponseError) and "Unknown Redis command" in str(results[2])
    assert isinstance(results[3], redis.exceptions.NoScriptError)


async def test_a_registered_script_loads_itself_on_noscript_while_others_share_its_batch(
    auto: Redis[bytes], trips: RoundTrips, unique: str
):
    script = auto.register_script(f"return 'ran {unique}' .. KEYS[1]")  # a new body: never loaded
    results = await asyncio.gather(script(keys=["k"]), auto.set(f"ap-{unique}", "1"), auto.get(f"ap-{unique}"))
    assert results == [f"ran {unique}k".encode(), True, b"1"]
    # the batch (EVALSHA: NOSCRIPT), then SCRIPT LOAD, then EVALSHA again
    assert trips.count == 3


@pytest.mark.parametrize("which", [0, 1], ids=["the-first-of-the-tick", "a-later-one"])
async def test_a_caller_cancelled_before_the_flush_is_dropped_and_the_others_get_their_replies(
    auto: Redis[bytes], plain: Redis[bytes], trips: RoundTrips, unique: str, which: int
):
    key = f"ap-{unique}"
    calls = [
        asyncio.ensure_future(auto.set(f"{key}:a", "1")),
        asyncio.ensure_future(auto.set(f"{key}:b", "1")),
        asyncio.ensure_future(auto.incr(f"{key}:n")),
    ]
    await asyncio.sleep(0)  # every caller queued its command; the batch is sent on a later tick
    cancelled = calls.pop(which)
    cancelled.cancel()
    assert [await c for c in calls] == [True, 1]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # a command cancelled before its batch was sent never runs
    assert await plain.exists(f"{key}:{'ab'[which]}") == 0
    assert trips.count == 1


async def test_a_caller_cancelled_in_flight_leaves_its_command_run_and_the_others_unharmed(
    auto: Redis[bytes], plain: Redis[bytes], unique: str
):
    key = f"ap-{unique}"
    slow = "local t = redis.call('TIME') repeat local n = redis.call('TIME') until (n[1]-t[1])*1e6 + n[2]-t[2] > 50000"
    blocker = asyncio.ensure_future(auto.eval(slow + " return 1", 0))
    cancelled = asyncio.ensure_future(auto.set(f"{key}:cancelled", "1"))
    other = asyncio.ensure_future(auto.incr(f"{key}:n"))
    await asyncio.sleep(0.02)  # sent, the script still running
    cancelled.cancel()
    assert await blocker == 1 and await other == 1
    assert await plain.get(f"{key}:cancelled") == b"1"


async def test_blocking_and_connection_state_commands_go_direct(auto: Redis[bytes], unique: str):
    assert goes_direct(("BLPOP", "k", 0)) and goes_direct(("CLIENT SETNAME", "x")) and goes_direct(("SELECT", 1))
    assert goes_direct(("XREADGROUP", "GROUP", "g", "c", "BLOCK", 5, "STREAMS", "s", ">"))
    assert not goes_direct(("XREAD", "COUNT", 1, "STREAMS", "s", "0")) and not goes_direct(("GET", "k"))
    key = f"ap-{unique}"
    popped = asyncio.ensure_future(auto.blpop([f"{key}:list"], timeout=5))
    await asyncio.sleep(0.05)
    # a BLPOP in their batch would hold these behind it until its 5 s ran out; direct, it does not
    results = await asyncio.wait_for(asyncio.gather(auto.set(f"{key}:a", "1"), auto.rpush(f"{key}:list", "x")), 3)
    assert results == [True, 1]
    assert await asyncio.wait_for(popped, 3) == (f"{key}:list".encode(), b"x")


async def test_a_transaction_keeps_its_own_path(auto: Redis[bytes], trips: RoundTrips, unique: str):
    key = f"ap-{unique}"
    async with auto.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").incr(f"{key}:n").get(key)
        assert await pipe.execute() == [True, 1, b"1"]
    assert trips.count == 1  # MULTI ... EXEC in one write, not split across batches

    async def bump(pipe: Any) -> None:
        value = int(await pipe.get(f"{key}:n"))
        pipe.multi()
        pipe.set(f"{key}:n", value + 10)

    await auto.transaction(bump, f"{key}:n")
    assert await auto.get(f"{key}:n") == b"11"


async def test_a_failed_connection_reaches_every_caller_of_the_batch():
    client = AutoPipelineRedis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        results = await asyncio.gather(*(client.get(f"k{i}") for i in range(5)), return_exceptions=True)
        assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results), results
        with pytest.raises(redis.exceptions.ConnectionError):  # a lone command: the same
            await client.get("k")
    finally:
        await client.aclose()


async def test_a_timed_out_batch_reaches_every_caller_as_a_timeout(redis_url: str, plain: Redis[bytes]):
    client = AutoPipelineRedis.from_url(redis_url, socket_timeout=0.1, retry=Retry(NoBackoff(), 0))
    slow = "local t = redis.call('TIME') repeat local n = redis.call('TIME') until (n[1]-t[1])*1e6 + n[2]-t[2] > 300000"
    try:
        results = await asyncio.gather(
            client.eval(slow + " return 1", 0), client.get("k"), client.ping(), return_exceptions=True
        )
        assert all(isinstance(r, redis.exceptions.TimeoutError) for r in results), results
        await asyncio.sleep(0.3)  # the script ends; the timed-out connection was dropped, a new one works
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_more_commands_than_the_cap_go_in_several_pipelines(
    auto: Redis[bytes], trips: RoundTrips, unique: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(auto, "max_batch", 8)
    await asyncio.gather(*(auto.incr(f"ap-{unique}:n") for _ in range(20)))  # the pool opens its connections
    trips.reset()
    results = await asyncio.gather(*(auto.incr(f"ap-{unique}:n") for _ in range(20)))
    assert sorted(results) == list(range(21, 41))
    assert trips.count == 3  # 8 + 8 + 4
