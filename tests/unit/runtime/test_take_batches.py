"""``faust_compat.take_batches``: batches as Faust's ``take_events`` made them, an idle stream
that sleeps, and acks only once a batch was processed (a Faust agent's in-memory test context)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from leadpipe.runtime.faust_compat import take_batches

WITHIN_S = 0.05


def _app() -> faust.App:
    return faust.App("take-batches-test", store="memory://", web_enabled=False)


class _Seen:
    def __init__(self) -> None:
        self.batches: list[tuple[float, list[Any]]] = []
        self.waits = 0
        self.acked: list[Any] = []
        self.fail_on: Any = None
        self.got = asyncio.Event()
        self.processed = asyncio.Event()  # processing of a batch returns once this is set
        self.processed.set()


def _agent(app: faust.App, seen: _Seen, max_records: int) -> Any:
    @app.agent()
    async def agent(stream: faust.StreamT[Any]) -> None:
        waits = stream.wait

        async def counted(*args: Any, **kwargs: Any) -> Any:
            seen.waits += 1
            return await waits(*args, **kwargs)

        ack = stream.ack

        async def acked(event: Any) -> bool:
            seen.acked.append(event.value)
            return await ack(event)

        stream.wait = counted  # type: ignore[method-assign]
        stream.ack = acked  # type: ignore[method-assign]
        async for events in take_batches(stream, max_records, WITHIN_S):
            values = [e.value for e in events]
            seen.batches.append((time.monotonic(), values))
            seen.got.set()
            await seen.processed.wait()
            if seen.fail_on in values:
                raise RuntimeError("processing failed")

    return agent


async def _next_batch(seen: _Seen, timeout_s: float = 5.0) -> tuple[float, list[Any]]:
    await asyncio.wait_for(seen.got.wait(), timeout_s)
    seen.got.clear()
    return seen.batches[-1]


async def test_an_idle_stream_sleeps_and_a_lone_record_comes_within_the_window() -> None:
    app, seen = _app(), _Seen()
    async with _agent(app, seen, max_records=100).test_context() as agent:
        await asyncio.sleep(10 * WITHIN_S)
        # take_events would have woken about ten times by now; an idle take waits once, for a record.
        assert seen.waits <= 1
        sent = time.monotonic()
        await agent.put("lone")
        at, values = await _next_batch(seen)
        assert values == ["lone"]
        assert at - sent < WITHIN_S + 0.5  # the window's length, plus slack for a busy machine


async def test_records_of_one_window_come_as_one_batch_and_a_full_batch_at_once() -> None:
    app, seen = _app(), _Seen()
    async with _agent(app, seen, max_records=3).test_context() as agent:
        for value in ["a", "b"]:
            await agent.put(value)
        assert (await _next_batch(seen))[1] == ["a", "b"]
        slow = time.monotonic() + 60.0
        for value in ["c", "d", "e", "f"]:
            await agent.put(value)
        at, values = await _next_batch(seen)
        assert values == ["c", "d", "e"]  # never more than max_records
        assert at < slow
        assert (await _next_batch(seen))[1] == ["f"]


async def test_a_batch_is_acked_only_once_processed_and_never_when_processing_raised() -> None:
    app, seen = _app(), _Seen()
    seen.fail_on = "bad"
    async with _agent(app, seen, max_records=10).test_context() as agent:
        seen.processed.clear()
        await agent.put("ok")
        await _next_batch(seen)
        await asyncio.sleep(5 * WITHIN_S)
        assert seen.acked == []  # still being processed
        seen.processed.set()
        await agent.put("bad")
        assert (await _next_batch(seen))[1] == ["bad"]
        assert seen.acked == ["ok"]
        await asyncio.sleep(5 * WITHIN_S)
        assert seen.acked == ["ok"]  # "bad" raised: not acked, read again after a restart
