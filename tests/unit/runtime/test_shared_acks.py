"""``SharedAcks``: handlers running side by side in a batch share one flush for their outputs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from leadpipe.runtime.publish import SharedAcks
from schemas.envelope import new_event
from schemas.notification_outcome.v1 import NotificationOutcome
from tests.fakes import FakePublisher


def event(n: int) -> object:
    data = NotificationOutcome(notification_id=f"n-{n}", lead_id=f"ld_{n}", status="sent", channel="email",
                               audience="lead", attempts=1, completed_at=datetime.now(UTC))  # fmt: skip
    return new_event(data, source="/t", subject=data.lead_id)


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

    async def lead(n: int) -> None:
        acks.enter()
        try:
            await asyncio.sleep(0)  # both running before either publishes
            await acks.publish([event(n)])  # type: ignore[list-item]
        finally:
            acks.leave()

    results = await asyncio.gather(lead(0), lead(1), return_exceptions=True)
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
