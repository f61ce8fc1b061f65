"""The projector's consume loop with a fake consumer: which offsets it commits, and that a failed
commit stops it (the app restarts it) rather than being lost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.console import projector
from services.console.config import ConsoleSettings

TP0, TP1 = TopicPartition("lead.scored.v1", 0), TopicPartition("lead.scored.v1", 1)


@dataclass
class Rec:
    offset: int


class FakeConsumer:
    def __init__(
        self, batches: list[dict[TopicPartition, list[Rec]]], fail_commit: bool = False, assigned_after: int = 0
    ) -> None:
        self.batches, self.fail_commit = batches, fail_commit
        self.commits: list[dict[TopicPartition, int]] = []
        self.stopped = False
        self.timeouts: list[int] = []
        #: polls before the group assigns partitions
        self.assigned_after = assigned_after

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    def assignment(self) -> set[TopicPartition]:
        return {TP0, TP1} if len(self.timeouts) > self.assigned_after else set()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Rec]]:
        self.timeouts.append(timeout_ms)
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(0.01)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.sleep(0)
        self.commits.append(offsets)
        if self.fail_commit:
            raise RuntimeError("CommitFailedError: the group rebalanced")


class Handled:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def handle(self, records: list[Any]) -> int:
        self.batches.append(records)
        return len(records)


SETTINGS = ConsoleSettings(kafka_bootstrap_servers="unused:9092", redis_url="redis://unused", database_url="unused")


async def test_each_batchs_next_offsets_are_committed_after_it_is_projected(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeConsumer([{TP0: [Rec(4), Rec(5)], TP1: [Rec(9)]}, {TP1: [Rec(10)]}])
    monkeypatch.setattr(projector, "make_consumer", lambda *a, **k: fake)
    handled = Handled()
    task = asyncio.create_task(projector.run(SETTINGS, handled, asyncio.Event()))  # type: ignore[arg-type]
    while len(fake.commits) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [len(b) for b in handled.batches] == [3, 1]
    assert fake.commits == [{TP0: 6, TP1: 10}, {TP1: 11}]
    assert fake.stopped


async def test_a_failed_commit_stops_the_loop_at_the_next_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeConsumer([{TP0: [Rec(1)]}, {TP0: [Rec(2)]}], fail_commit=True)
    monkeypatch.setattr(projector, "make_consumer", lambda *a, **k: fake)
    with pytest.raises(RuntimeError, match="CommitFailedError"):
        await asyncio.wait_for(projector.run(SETTINGS, Handled(), asyncio.Event()), 5)  # type: ignore[arg-type]
    assert fake.commits == [{TP0: 2}] and fake.stopped


async def test_it_polls_briefly_until_assigned_then_waits_long_for_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two polls before the assignment, then an idle one: /readyz turns ready within a short poll,
    # and an idle console does not turn its loop twice a second (a record ends a poll at once).
    fake = FakeConsumer([], assigned_after=2)
    monkeypatch.setattr(projector, "make_consumer", lambda *a, **k: fake)
    ready = asyncio.Event()
    task = asyncio.create_task(projector.run(SETTINGS, Handled(), ready))  # type: ignore[arg-type]
    while len(fake.timeouts) < 5:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ready.is_set()
    short, long = projector.JOINING_POLL_MS, projector.IDLE_POLL_MS
    assert fake.timeouts[:5] == [short, short, short, long, long]
    assert short <= 500 and long >= 10_000
