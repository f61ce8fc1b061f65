"""The runtime's batch mode with nurture's handler against a real Redis, with a list-backed
publisher and state log: per-event error policy inside a batch, a lead's events applied in
their order, and an outcome for a lead not seen yet parked (not dead-lettered)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from leadpipe.runtime.stream import BatchProcessor, EventProcessor, RawMessage
from schemas.codec import encode
from schemas.envelope import Envelope, new_event
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NotificationOutcome
from services.nurture.handlers import NurtureBatch
from tests.integration.nurture.harness import scored
from tests.integration.nurture.test_store import handler

SCORED, OUTCOME, PARK = "lead.scored.v1", "notification.outcome.v1", "nurture.park.v1"


def raw(topic: str, event: Envelope[Any], offset: int, value: bytes | None = None) -> RawMessage:
    rec = encode(event)
    return RawMessage(topic, 0, offset, rec.key, value if value is not None else rec.value, list(rec.headers))


class Batch(BatchProcessor):
    handler: NurtureBatch


def batch(redis: Redis, tmp: Path, ensure_built: Any = None) -> tuple[Batch, Any, Any, Any]:
    """The batch mode, the publisher (``records``: dead letters and parked records), the state log."""
    h, pub, log = handler(redis, f"nurture:{uuid.uuid4().hex[:8]}:", tmp)
    processor = EventProcessor(service="nurture", metrics=h.metrics.stage, publisher=pub, retry_base_s=0.01,
                               park_topic=PARK)  # fmt: skip

    async def built() -> None: ...

    b = Batch(processor, NurtureBatch(h, ensure_built or built), {SCORED: LeadScored, OUTCOME: NotificationOutcome},
              concurrency=4)  # fmt: skip
    return b, pub, log, pub


def _lead() -> str:
    return "ld_" + uuid.uuid4().hex[:10]


async def test_an_invalid_event_is_dead_lettered_and_an_unknown_leads_outcome_parked_alone_and_their_batch_mates_processed(
    redis_url: str, tmp_path: Path
):
    redis = Redis.from_url(redis_url)
    b, pub, log, sink = batch(redis, tmp_path)
    a, c = _lead(), _lead()
    bad = scored(_lead(), grade="B")
    # a suppression (it may change the lead, so it waits for it); a "sent" outcome is skipped
    ghost = NotificationOutcome(notification_id="touch:x", lead_id="ld_ghost", status="suppressed", channel="email",
                                audience="lead", attempts=1, completed_at=datetime.now(UTC))  # fmt: skip
    messages = [
        raw(SCORED, scored(a, grade="A"), 0),
        raw(SCORED, bad, 1, encode(bad).value.replace(b'"grade":"B"', b'"grade":"Z"')),
        raw(OUTCOME, new_event(ghost, source="/t", subject="ld_ghost"), 2),
        raw(SCORED, scored(c, grade="A"), 3),
    ]
    handled = await b.process(messages)
    states = {lead: await b.handler.handler.store.load(lead) for lead in (a, c)}
    await redis.aclose()
    assert handled == 2
    assert [t for t, _ in sink.records] == ["lead.scored.v1.dlq", PARK]
    (_, invalid), (_, parked) = sink.records
    assert any(b"data.grade" in v for _, v in invalid.headers) and invalid.value == messages[1].value
    assert parked.value == messages[2].value and ("leadpipe_parked_topic", OUTCOME.encode()) in parked.headers
    assigned = {e.data.lead_id for e in pub.events if e.type.endswith("lead.assigned")}
    assert assigned == {a, c}
    assert all(s is not None and s.version == 1 and s.attempts == 1 for s in states.values())
    assert sorted(s.lead_id for s in log.states) == sorted([a, c])


async def test_two_events_of_one_lead_in_a_batch_are_applied_in_their_order(redis_url: str, tmp_path: Path):
    redis = Redis.from_url(redis_url)
    b, pub, log, sink = batch(redis, tmp_path)
    lead, other = _lead(), _lead()
    messages = [
        raw(SCORED, scored(lead, grade="B", event_id="ev-1"), 0),
        raw(SCORED, scored(other, grade="B"), 1),
        raw(SCORED, scored(lead, grade="B", kind="email_replied", event_id="ev-2"), 2),
    ]
    assert await b.process(messages) == 3
    state = await b.handler.handler.store.load(lead)
    await redis.aclose()
    moves = [(e.data.from_stage, e.data.to_stage) for e in pub.events
             if e.type.endswith("lead.stage_changed") and e.data.lead_id == lead]  # fmt: skip
    assert moves == [(None, "captured"), ("captured", "engaged"), ("engaged", "sales_qualified")]
    assert state is not None and state.version == 2 and {"ev-1", "ev-2"} <= set(state.seen)
    assert [s.version for s in log.states if s.lead_id == lead] == [1, 2] and sink.records == []


async def test_a_transient_failure_is_retried_for_its_event_and_a_replayed_batch_changes_nothing(
    redis_url: str, tmp_path: Path
):
    redis = Redis.from_url(redis_url)
    b, pub, log, sink = batch(redis, tmp_path)
    failing, fine = _lead(), _lead()
    calls = {"n": 0}
    original = pub.send  # a batch's leads send, then share one flush (SharedAcks)

    async def flaky(events: Any) -> None:
        if any(e.data.lead_id == failing for e in events) and calls["n"] == 0:
            calls["n"] += 1
            raise ConnectionError("broker gone for a moment")
        await original(events)

    pub.send = flaky  # type: ignore[method-assign]
    messages = [raw(SCORED, scored(failing, grade="A"), 0), raw(SCORED, scored(fine, grade="A"), 1)]
    assert await b.process(messages) == 2
    published = len(pub.events)
    # The same records again (a crash before the offsets were committed): duplicates, no new output;
    # each lead's stored state is appended again (the crash may have lost its first append).
    assert await b.process(messages) == 2
    states = {lead: await b.handler.handler.store.load(lead) for lead in (failing, fine)}
    await redis.aclose()
    assert calls["n"] == 1 and sink.records == [] and len(pub.events) == published and len(log.states) == 4
    assert {s.lead_id: s for s in log.states[2:]} == states
    assert {e.data.lead_id for e in pub.events if e.type.endswith("lead.assigned")} == {failing, fine}
    assert all(s is not None and s.version == 1 for s in states.values())


async def test_leads_handled_concurrently_are_spread_over_the_reps_as_one_by_one(redis_url: str, tmp_path: Path):
    redis = Redis.from_url(redis_url)
    b, pub, _, _ = batch(redis, tmp_path)
    leads = [_lead() for _ in range(6)]
    assert await b.process([raw(SCORED, scored(lead, grade="A"), n) for n, lead in enumerate(leads)]) == 6
    await redis.aclose()
    reps = [e.data.rep_id for e in pub.events if e.type.endswith("lead.assigned")]
    # Rotation by remaining capacity, as one by one: the reps' counts never differ by more than one.
    assert all(abs(reps[:n].count("rep-0") - reps[:n].count("rep-1")) <= 1 for n in range(1, 7)), reps
    assert sorted(reps) == ["rep-0"] * 3 + ["rep-1"] * 3, reps
