"""The one consume runtime: the error policy per record and per batch, parking, publishing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import KafkaPublisher
from leadpipe.runtime.stream import (
    PARKED_ATTEMPT,
    BatchProcessor,
    EventProcessor,
    HandlerError,
    NotYet,
    RawMessage,
    parked_due,
    unparked,
)
from schemas.codec import encode
from schemas.envelope import Envelope, new_event
from schemas.notification_outcome.v1 import NotificationOutcome
from tests.fakes import FakePublisher, event_processor

TOPIC = "notification.outcome.v1"


def outcome(lead_id: str, n: int = 0) -> NotificationOutcome:
    return NotificationOutcome(notification_id=f"touch:{lead_id}:{n}", lead_id=lead_id, status="sent",
                               channel="email", audience="lead", attempts=1, completed_at=datetime.now(UTC))  # fmt: skip


def raw(data: Any, offset: int = 0, event_id: str | None = None) -> RawMessage:
    rec = encode(new_event(data, source="/t", subject=data.lead_id, id=event_id or f"ev-{offset}"))
    return RawMessage(TOPIC, 0, offset, rec.key, rec.value, list(rec.headers))


def reasons(processor: EventProcessor) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in processor.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "leadpipe_events_dead_lettered_total":
                out[sample.labels["reason"]] = sample.value
    return out


async def test_an_invalid_a_refused_and_a_failing_event_are_each_dead_lettered_with_their_reason():
    pub = FakePublisher()
    p = event_processor("t", pub)

    async def refuse(_: Envelope[Any]) -> None:
        raise HandlerError("data.lead_id: no such lead", field="data.lead_id")

    async def bug(_: Envelope[Any]) -> None:
        raise KeyError("oops")

    broken = raw(outcome("ld_a"))
    broken.value = b"{not json"
    assert not await p.process(broken, NotificationOutcome, refuse)
    assert not await p.process(raw(outcome("ld_a")), NotificationOutcome, refuse)
    assert not await p.process(raw(outcome("ld_a")), NotificationOutcome, bug)
    assert pub.dead_letters() == [f"{TOPIC}.dlq"] * 3
    assert reasons(p) == {"invalid": 1.0, "rejected": 1.0, "handler_error": 1.0}


async def test_a_transient_failure_is_retried_and_the_outputs_are_flushed_before_process_returns():
    pub = FakePublisher()
    p = event_processor("t", pub)
    calls: list[int] = []

    async def flaky(event: Envelope[Any]) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("redis slow")
        await pub.send([event])

    assert await p.process(raw(outcome("ld_a")), NotificationOutcome, flaky)
    assert len(calls) == 2 and pub.pending == [] and pub.topics() == [TOPIC] and pub.dead_letters() == []


async def test_an_event_for_something_not_seen_yet_is_parked_then_dead_lettered_past_its_deadline():
    pub = FakePublisher()
    now = [1000.0]
    p = EventProcessor(service="t", metrics=StageMetrics("t", CollectorRegistry()), publisher=pub,
                       park_topic="t.park.v1", park_for_s=60, park_base_s=2, clock=lambda: now[0])  # fmt: skip

    async def not_yet(_: Envelope[Any]) -> None:
        raise NotYet("data.lead_id: lead 'ld_a' not seen yet")

    assert not await p.process(raw(outcome("ld_a")), NotificationOutcome, not_yet)
    [(topic, parked)] = pub.records
    again = RawMessage("t.park.v1", 0, 0, parked.key, parked.value, parked.headers)
    assert topic == "t.park.v1" and parked_due(again) == 1002.0 and unparked(again).topic == TOPIC

    now[0] = 1010.0  # due, the lead still unknown: parked again, twice as long
    assert not await p.process(unparked(again), NotificationOutcome, not_yet)
    second = RawMessage("t.park.v1", 0, 1, pub.records[1][1].key, pub.records[1][1].value, pub.records[1][1].headers)
    assert parked_due(second) == 1014.0 and (PARKED_ATTEMPT, b"2") in second.headers

    now[0] = 1061.0  # past the deadline (60 s after it was first parked)
    assert not await p.process(unparked(second), NotificationOutcome, not_yet)
    topic, dead = pub.records[2]
    assert topic == f"{TOPIC}.dlq" and reasons(p) == {"not_yet": 1.0}
    error = dict(dead.headers)["dlq_error"].decode()
    assert "not seen yet" in error and "2 retries over 60s" in error
    assert not any(k.startswith("leadpipe_parked_") for k, _ in dead.headers)


async def test_without_a_park_topic_an_event_not_seen_yet_is_dead_lettered_at_once():
    pub = FakePublisher()

    async def not_yet(_: Envelope[Any]) -> None:
        raise NotYet("data.lead_id: lead 'ld_a' not seen yet")

    assert not await event_processor("t", pub).process(raw(outcome("ld_a")), NotificationOutcome, not_yet)
    assert pub.dead_letters() == [f"{TOPIC}.dlq"]


class Recorder:
    """A ``BatchHandler`` that records the order and the concurrency of what it handles."""

    def __init__(self) -> None:
        self.order: list[tuple[str, int]] = []
        self.running = 0
        self.most = 0
        self.log: list[str] = []

    def key(self, event: Envelope[Any]) -> str | None:
        return str(event.data.lead_id)

    async def begin(self, events: Sequence[Envelope[Any]]) -> None:
        self.log.append(f"begin {len(events)}")

    async def handle(self, event: Envelope[Any]) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.005)
        self.order.append((event.data.lead_id, int(event.data.notification_id.rsplit(":", 1)[1])))
        self.running -= 1

    async def commit(self) -> None:
        self.log.append("commit")

    async def abandon(self) -> None:
        self.log.append("abandon")


async def test_a_batch_keeps_each_keys_order_and_runs_at_most_concurrency_keys_at_once():
    handler = Recorder()
    batch = BatchProcessor(event_processor("t"), handler, {TOPIC: NotificationOutcome}, concurrency=2)
    msgs = [raw(outcome(f"ld_{k}", n), offset=k * 10 + n) for n in range(3) for k in range(4)]
    assert await batch.process(msgs) == 12
    assert handler.most == 2 and handler.log == ["begin 12", "commit"]
    for k in range(4):
        assert [n for lead, n in handler.order if lead == f"ld_{k}"] == [0, 1, 2]


async def test_each_batch_is_counted_by_its_size_in_the_stage_metrics():
    events = event_processor("t")
    batch = BatchProcessor(events, Recorder(), {TOPIC: NotificationOutcome}, concurrency=2)
    assert await batch.process([raw(outcome(f"ld_{k}"), offset=k) for k in range(7)]) == 7
    assert await batch.process([raw(outcome("ld_x"), offset=20)]) == 1
    registry, labels = events.metrics.registry, {"service": "t"}
    assert registry.get_sample_value("leadpipe_batch_records_count", labels) == 2
    assert registry.get_sample_value("leadpipe_batch_records_sum", labels) == 8
    assert registry.get_sample_value("leadpipe_batch_records_bucket", labels | {"le": "1.0"}) == 1
    assert registry.get_sample_value("leadpipe_batch_records_bucket", labels | {"le": "5.0"}) == 1
    assert registry.get_sample_value("leadpipe_batch_records_bucket", labels | {"le": "10.0"}) == 2


class Around:
    """A ``BatchState`` only (no ``handle``): its records' handler comes from ``for_record``."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def key(self, event: Envelope[Any]) -> str | None:
        return str(event.data.lead_id)

    async def begin(self, events: Sequence[Envelope[Any]]) -> None:
        self.log.append(f"begin {len(events)}")

    async def commit(self) -> None:
        self.log.append("commit")

    async def abandon(self) -> None:
        self.log.append("abandon")


async def test_a_batch_gives_each_record_to_the_handler_made_for_it_and_refuses_a_state_with_no_handler():
    seen: list[tuple[int, str]] = []

    def for_record(msg: RawMessage) -> Any:
        async def handle(event: Envelope[Any]) -> None:
            seen.append((msg.offset, event.id))

        return handle

    state = Around()
    batch = BatchProcessor(event_processor("t"), state, {TOPIC: NotificationOutcome}, concurrency=3,
                           for_record=for_record)  # fmt: skip
    assert await batch.process([raw(outcome(f"ld_{n}"), offset=n) for n in range(5)]) == 5
    assert sorted(seen) == [(n, f"ev-{n}") for n in range(5)] and state.log == ["begin 5", "commit"]
    with pytest.raises(TypeError, match="Around has no handle"):
        BatchProcessor(event_processor("t"), state, {TOPIC: NotificationOutcome})


async def test_the_kafka_publisher_counts_what_the_broker_acknowledged_and_flush_waits_for_every_agents_sends():
    class Producer:
        """Acknowledges a send a moment later, as a broker does."""

        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> Any:
            self.sent.append(topic)
            ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.01, ack.set_result, None)
            return ack

    stage = StageMetrics("t", CollectorRegistry())
    producer = Producer()
    pub = KafkaPublisher(producer, metrics=stage, topic_for=lambda t: f"x.{t}")
    labels = {"service": "t", "topic": f"x.{TOPIC}"}
    events = [new_event(outcome("ld_a"), source="/t", subject="ld_a")]

    async def another_agent_flushes() -> None:
        await pub.flush()

    await pub.send(events)
    assert stage.registry.get_sample_value("leadpipe_events_published_total", labels) is None
    # Another agent's flush takes the ack first: this flush still waits for it.
    other = asyncio.create_task(another_agent_flushes())
    await asyncio.sleep(0)
    await pub.flush()
    assert stage.registry.get_sample_value("leadpipe_events_published_total", labels) == 1
    await other
    await pub.publish(events)
    assert producer.sent == [f"x.{TOPIC}"] * 2
    assert stage.registry.get_sample_value("leadpipe_events_published_total", labels) == 2
