"""``SharedAcks``: handlers running side by side in a batch share one flush for their outputs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from leadpipe.runtime.publish import SharedAcks
from schemas.envelope import new_event
from schemas.notification_outcome.v1 import NotificationOutcome
from tests.fakes import FakePublisher


def event(n: int) -> object:
    data = NotificationOutcome(notification_id=f"n-{n}", lead_id=f"ld_{n}", status="sent", channel="email",
                               audience="lead", attempts=1, completed_at=datetime.now(UTC))  # fmt: skip
    return new_event(data, source="/t", subject=data.lead_id)


async def running_lead(acks: SharedAcks, n: int, delay: float = 0.0) -> None:
    """A lead of a batch: running, publishing one event after ``delay`` (0: once every lead
    started together has started), then leaving."""
    acks.enter()
    try:
        await asyncio.sleep(delay)
        await acks.publish([event(n)])  # type: ignore[list-item]
    finally:
        acks.leave()


async def test_leads_running_together_are_acked_by_one_flush_once_each_has_sent_or_finished():
    pub = FakePublisher()
    acks = SharedAcks(pub)
    acked: list[int] = []

    async def lead(n: int, sends: bool, delay: float) -> None:
        acks.enter()
        try:
            await asyncio.sleep(delay)
            if sends:
                await acks.publish([event(n)])  # type: ignore[list-item]
                acked.append(len(pub.events))  # what was acknowledged when this lead went on
        finally:
            acks.leave()

    await asyncio.gather(lead(0, True, 0.0), lead(1, False, 0.01), lead(2, True, 0.02))
    assert pub.log == ["send notification.outcome.v1", "send notification.outcome.v1", "flush"]
    assert acked == [2, 2]  # neither went on before both were acknowledged


async def test_a_failed_flush_wakes_every_waiting_lead_with_its_error():
    pub = FakePublisher()
    acks = SharedAcks(pub)
    pub.fail = ConnectionError("broker away")
    results = await asyncio.gather(running_lead(acks, 0), running_lead(acks, 1), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError] and pub.events == []


async def test_a_lead_that_is_not_running_is_not_waited_for():
    pub = FakePublisher()
    acks = SharedAcks(pub)
    acks.enter()
    acks.enter()
    acks.leave()  # the second left (backing off before a retry) before the first published
    await asyncio.wait_for(acks.publish([event(0)]), timeout=1)  # type: ignore[list-item]
    assert pub.log == ["send notification.outcome.v1", "flush"] and len(pub.events) == 1
    with pytest.raises(asyncio.TimeoutError):  # while another lead runs and has not sent, it waits
        acks.enter()
        await asyncio.wait_for(acks.publish([event(1)]), timeout=0.05)  # type: ignore[list-item]


async def test_a_leads_events_are_held_until_every_running_lead_has_published_then_sent_together():
    pub = FakePublisher()
    acks = SharedAcks(pub)
    both = asyncio.gather(running_lead(acks, 0), running_lead(acks, 1, delay=0.05))
    await asyncio.sleep(0.02)  # lead 0 has published, lead 1 has not
    held = list(pub.log)
    await both
    assert held == []  # nothing sent while a running lead had yet to publish
    assert pub.log == ["send notification.outcome.v1", "send notification.outcome.v1", "flush"]


async def test_a_send_that_fails_fails_only_the_lead_whose_events_it_sent():
    class Refusing(FakePublisher):
        async def send(self, events: Any) -> None:
            if any(e.data.lead_id == "ld_1" for e in events):
                raise ValueError("data.body: the record is larger than the broker takes")
            await super().send(events)

    pub = Refusing()
    acks = SharedAcks(pub)
    results = await asyncio.gather(*(running_lead(acks, n) for n in range(3)), return_exceptions=True)
    assert results[0] is None and results[2] is None and isinstance(results[1], ValueError)
    assert [e.data.lead_id for e in pub.events] == ["ld_0", "ld_2"] and pub.log[-1] == "flush"


async def test_a_lead_cancelled_while_waiting_leaves_the_others_acknowledged():
    pub = FakePublisher()
    acks = SharedAcks(pub)
    acks.enter()
    acks.enter()
    first = asyncio.ensure_future(acks.publish([event(0)]))  # type: ignore[list-item]
    second = asyncio.ensure_future(acks.publish([event(1)]))  # type: ignore[list-item]
    await asyncio.sleep(0)  # both wait; the send is scheduled
    second.cancel()
    await asyncio.wait_for(first, timeout=1)
    assert second.cancelled() and len(pub.events) == 2  # its events were on their way already


async def test_stopping_while_the_shared_flush_waits_cancels_every_waiting_lead():
    class Stuck(FakePublisher):
        async def flush(self) -> None:
            await asyncio.Event().wait()  # the broker never answers

    acks = SharedAcks(Stuck())
    acks.enter()
    waiting = asyncio.ensure_future(acks.publish([event(0)]))  # type: ignore[list-item]
    await asyncio.sleep(0.01)
    for task in list(acks._tasks):  # the worker stopping cancels the pending send-and-flush
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=1)
