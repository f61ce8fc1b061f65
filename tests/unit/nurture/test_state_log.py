"""StateLog: appends are acknowledged by ``flush``; a failed append is sent again unless a newer
state of the same lead follows it (a compacted topic keeps the last record of a key); a flush
that overlaps another returns only once the appends the other took are acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError

from services.nurture.adapters.state_log import StateLog
from services.nurture.domain.state import LeadState


class Producer:
    """Records sends; the acks of the first ``fail`` sends fail (the broker timed out)."""

    def __init__(self, fail: int):
        self.fail = fail
        self.sent: list[tuple[bytes, int]] = []
        self.acked: list[tuple[bytes, int]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        record = (key, LeadState.model_validate_json(value).version)
        self.sent.append(record)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(self.sent) <= self.fail:
            fut.set_exception(KafkaTimeoutError())
        else:
            self.acked.append(record)
            fut.set_result(None)
        return fut


def state(lead: str, version: int) -> LeadState:
    return LeadState(lead_id=lead, version=version)


async def test_a_failed_append_is_sent_again_by_flush():
    producer = Producer(fail=1)
    log = StateLog(producer, "state", retry_base_s=0.001)
    await log.append(state("ld_a", 1))
    await log.append(state("ld_b", 1))
    assert producer.acked == [(b"ld_b", 1)]  # sent, not yet flushed: ld_a's ack failed
    await log.flush()
    assert producer.acked == [(b"ld_b", 1), (b"ld_a", 1)]


async def test_a_failed_append_superseded_by_a_newer_state_of_its_lead_is_not_sent_again():
    producer = Producer(fail=1)
    log = StateLog(producer, "state", retry_base_s=0.001)
    await log.append(state("ld_a", 1))
    await log.append(state("ld_a", 2))
    await log.flush()
    assert producer.sent == [(b"ld_a", 1), (b"ld_a", 2)] and producer.acked == [(b"ld_a", 2)]


class SlowProducer(Producer):
    """Acknowledges nothing until ``release``."""

    def __init__(self) -> None:
        super().__init__(fail=0)
        self.acks: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((key, LeadState.model_validate_json(value).version))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut

    def release(self) -> None:
        for fut in self.acks:
            fut.set_result(None)


async def test_a_flush_overlapping_another_returns_only_once_the_appends_the_other_took_are_acked():
    producer = SlowProducer()
    log = StateLog(producer, "state", retry_base_s=0.001)
    await log.append(state("ld_a", 1))  # the scheduler's append
    await log.append(state("ld_b", 1))  # a batch's append
    scheduler = asyncio.ensure_future(log.flush())  # takes both
    await asyncio.sleep(0)
    batch = asyncio.ensure_future(log.flush())  # the batch's: nothing of its own left to take
    await asyncio.sleep(0.01)
    assert producer.sent == [(b"ld_a", 1), (b"ld_b", 1)]
    assert not batch.done(), "the batch's flush returned before its append was acknowledged"
    assert not scheduler.done()
    producer.release()
    await asyncio.gather(scheduler, batch)
