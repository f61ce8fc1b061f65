"""The nurture handler through the runtime, against fakes of its ports (no Redis, no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leadpipe.runtime.stream import BatchProcessor, EventProcessor, RawMessage, unparked
from schemas.codec import encode
from schemas.envelope import Envelope, new_event
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NO_CONSENT_ERROR, NotificationOutcome
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.handlers import Links, NurtureBatch, NurtureHandler
from tests.fakes import FakePublisher
from tests.unit.nurture.builders import MONDAY_10_NY, engine, scored
from tests.unit.nurture.fakes import FakeNurtureStore, FakeStateLog

SCORED, OUTCOME, PARK = "lead.scored.v1", "notification.outcome.v1", "nurture.park.v1"
EXPECTED: dict[str, Any] = {SCORED: LeadScored, OUTCOME: NotificationOutcome}


class Nurture:
    def __init__(self) -> None:
        self.store, self.log, self.publisher = FakeNurtureStore(), FakeStateLog(), FakePublisher()
        self.handler = NurtureHandler(engine(), self.store, self.publisher, self.log,
                                      NurtureMetrics(CollectorRegistry()), Links("s", "http://x", 60),
                                      clock=lambda: MONDAY_10_NY)  # fmt: skip
        self.events = EventProcessor(service="nurture", metrics=self.handler.metrics.stage, publisher=self.publisher,
                                     retry_base_s=0.001, park_topic=PARK)  # fmt: skip

        async def built() -> None: ...

        self.batches = BatchProcessor(self.events, NurtureBatch(self.handler, built), EXPECTED, concurrency=4)

    def parked(self) -> list[RawMessage]:
        return [RawMessage(t, 0, n, r.key, r.value, r.headers) for n, (t, r) in enumerate(self.publisher.records)
                if t == PARK]  # fmt: skip


def raw(data: Any, event_id: str, offset: int = 0) -> RawMessage:
    rec = encode(new_event(data, source="/t", subject=data.lead_id, id=event_id))
    return RawMessage(data.topic(), 0, offset, rec.key, rec.value, list(rec.headers))


def outcome(
    lead_id: str, status: str = "suppressed", audience: str = "lead", error: str | None = None
) -> NotificationOutcome:
    return NotificationOutcome(notification_id=f"touch:{lead_id}:x", lead_id=lead_id, status=status,  # type: ignore[arg-type]
                               channel="email", audience=audience, attempts=1, completed_at=MONDAY_10_NY,  # type: ignore[arg-type]
                               error=error)  # fmt: skip


def published_at_each_save(n: Nurture) -> list[int]:
    """From now on, how many events were acknowledged when each state was saved."""
    seen: list[int] = []
    save = n.store.save

    async def watching_save(*args: Any, **kwargs: Any) -> bool:
        seen.append(len(n.publisher.events))
        return await save(*args, **kwargs)

    n.store.save = watching_save  # type: ignore[method-assign]
    return seen


async def test_a_hot_lead_is_assigned_and_its_events_are_published_before_its_state_is_saved():
    n = Nurture()
    published_at_save = published_at_each_save(n)
    assert await n.batches.process([raw(scored("ld_1", grade="A"), "ev-1")]) == 1
    types = [e.type.rsplit(".", 1)[-1] for e in n.publisher.events]
    assert "assigned" in types and "requested" in types
    assert published_at_save == [len(n.publisher.events)]
    state = n.store.leads["ld_1"]
    assert state.version == 1 and n.log.sent == [("ld_1", state)] and n.log.acked == 1


async def test_leads_of_one_batch_share_one_flush_and_each_is_saved_only_after_its_outputs_are_acked():
    n = Nurture()
    await n.batches.process([raw(scored("ld_9", grade="B"), "ev-ld_9")])
    n.publisher.log.clear()
    published_at_save = published_at_each_save(n)
    leads = [f"ld_{i}" for i in range(3)]
    noop = outcome("ld_9", status="sent")  # runs beside them and publishes nothing
    msgs = [raw(scored(lead, grade="A"), f"ev-{lead}", offset=i) for i, lead in enumerate(leads)]
    assert await n.batches.process([*msgs, raw(noop, "ev-noop", offset=9)]) == 4
    assert n.publisher.log.count("flush") == 1 and n.publisher.log[-1] == "flush"  # every send, then one flush
    assert published_at_save == [len(n.publisher.events)] * 3  # no lead saved before all were acked
    assigned = {e.subject for e in n.publisher.events if e.type.endswith("lead.assigned")}
    assert assigned == set(leads) and all(n.store.leads[lead].version == 1 for lead in leads)


async def test_a_replayed_event_changes_nothing_and_publishes_nothing():
    n = Nurture()
    batch = [raw(scored("ld_1", grade="B"), "ev-1")]
    await n.batches.process(batch)
    published = len(n.publisher.events)
    assert await n.batches.process(batch) == 1
    assert len(n.publisher.events) == published and n.store.leads["ld_1"].version == 1


async def test_an_outcome_arriving_before_its_leads_state_is_parked_and_handled_once_the_lead_arrives():
    n = Nurture()
    early = raw(outcome("ld_1"), "ev-out")
    assert await n.batches.process([early]) == 0
    [parked] = n.parked()
    assert n.publisher.dead_letters() == [] and "ld_1" not in n.store.leads

    await n.batches.process([raw(scored("ld_1", grade="B"), "ev-1", offset=1)])  # the state, from the healed partition
    assert await n.events.process(unparked(parked), NotificationOutcome, n.handler.handle_one)
    state = n.store.leads["ld_1"]
    assert "ev-out" in state.seen and "email" in state.suppressed_channels and n.log.acked == len(n.log.sent)
    assert n.publisher.dead_letters() == []


async def test_an_outcome_that_changes_nothing_is_neither_saved_nor_written_to_the_state_topic():
    n = Nurture()
    await n.batches.process([raw(scored("ld_1", grade="B"), "ev-1")])
    before, appended, published = n.store.leads["ld_1"], len(n.log.sent), len(n.publisher.records)
    no_ops = [outcome("ld_1", status="sent"), outcome("ld_1", status="failed"), outcome("ld_1", status="expired"),
              outcome("ld_1", audience="rep"), outcome("ld_1", error=f"{NO_CONSENT_ERROR}: email")]  # fmt: skip
    assert await n.batches.process([raw(o, f"ev-noop-{i}", offset=1 + i) for i, o in enumerate(no_ops)]) == len(no_ops)
    state = n.store.leads["ld_1"]
    assert state.version == before.version == 1 and state == before
    assert len(n.log.sent) == appended and len(n.publisher.records) == published
    assert not any(s.startswith("ev-noop") for s in state.seen)

    # The one outcome that changes the lead is still applied, saved, written and remembered once.
    suppressed = raw(outcome("ld_1"), "ev-sup", offset=9)
    assert await n.batches.process([suppressed]) == 1
    state = n.store.leads["ld_1"]
    assert state.version == 2 and "ev-sup" in state.seen and state.suppressed_channels == ["email"]
    assert len(n.log.sent) == appended + 1
    assert await n.batches.process([suppressed]) == 1  # replayed: a duplicate, not applied again
    assert n.store.leads["ld_1"].version == 2 and n.log.sent[-1] == ("ld_1", n.store.leads["ld_1"])


async def test_an_outcome_that_can_change_no_lead_reads_no_state_and_is_not_parked_for_an_unknown_lead():
    """Two of a grade-A lead's three inputs are outcomes of its messages (sent): nurture skips
    them before reading any state. One for a lead it never saw is neither parked nor
    dead-lettered; a suppression for that lead still is parked (it may change the lead)."""
    n = Nurture()
    loads: list[list[str]] = []
    load_many = n.store.load_many_checked

    async def watching(lead_ids: Any) -> Any:
        loads.append(list(lead_ids))
        return await load_many(lead_ids)

    n.store.load_many_checked = watching  # type: ignore[method-assign]
    sent = [
        raw(outcome("ld_7", status="sent"), "ev-sent"),
        raw(outcome("ld_8", audience="rep", status="sent"), "ev-rep", 1),
    ]
    assert await n.batches.process(sent) == 2
    assert loads == [] and n.parked() == [] and n.publisher.dead_letters() == []

    # beside a scored lead, only the scored lead's state is read
    await n.batches.process(
        [raw(scored("ld_1", grade="B"), "ev-1", 2), raw(outcome("ld_7", status="sent"), "ev-s2", 3)]
    )
    assert loads == [["ld_1"]]

    assert await n.batches.process([raw(outcome("ld_9"), "ev-sup", 4)]) == 0  # a suppression: parked
    assert len(n.parked()) == 1 and loads[-1] == ["ld_9"]


async def test_a_lead_saved_by_a_worker_that_died_before_its_state_append_was_acked_is_appended_on_redelivery():
    """The chaos suite's whole-stack SIGKILL: the lead's outputs were acked and its state saved
    in Redis (AOF), but the state-topic append died unacked with the worker. The event comes
    again (its offset was not committed) and is a duplicate: its stored state is appended."""
    n = Nurture()
    event = raw(scored("ld_1", grade="A"), "ev-1")
    died = Nurture()
    died.handler.store = n.store  # the same Redis
    died.log.flush = _never_acked  # type: ignore[method-assign]
    with pytest.raises(Died):
        await died.batches.process([event])
    assert n.store.leads["ld_1"].version == 1 and n.log.sent == []  # saved; nothing on the topic
    published = len(n.publisher.events)
    assert await n.batches.process([event]) == 1  # redelivered to the next worker
    assert n.log.sent == [("ld_1", n.store.leads["ld_1"])] and n.log.acked == 1
    assert len(n.publisher.events) == published and n.store.leads["ld_1"].version == 1  # nothing decided twice


class Died(BaseException):
    """kill -9: nothing after it runs, nothing catches it."""


async def _never_acked() -> None:
    raise Died("the worker died before the broker acked its state appends")


async def test_a_lost_compare_and_set_is_decided_again_and_the_lead_assigned_once():
    n = Nurture()
    save, raced = n.store.save, []

    async def racing_save(state: Any, expected: int, *args: Any, **kw: Any) -> bool:
        if not raced:
            raced.append(1)
            return False  # another replica wrote first
        return await save(state, expected, *args, **kw)

    n.store.save = racing_save  # type: ignore[method-assign]
    await n.batches.process([raw(scored("ld_1", grade="A"), "ev-1")])
    assigned = {e.id for e in n.publisher.events if e.type.endswith("lead.assigned")}
    assert raced == [1] and len(assigned) == 1 and n.store.leads["ld_1"].version == 1


async def test_an_erasure_deletes_the_leads_state_tombstones_it_and_publishes_a_receipt():
    n = Nurture()
    await n.batches.process([raw(scored("ld_1", grade="B"), "ev-1")])
    req = PersonErasureRequested(request_id="r-1", requested_at=MONDAY_10_NY, requested_by="cli:test",
                                 subject_hash="0" * 64, lead_ids=["ld_1"])  # fmt: skip
    event: Envelope[Any] = new_event(req, source="/t", subject=req.subject_hash)
    await n.handler.erase(event)
    assert "ld_1" not in n.store.leads and n.log.sent[-1] == ("ld_1", None) and n.log.acked == len(n.log.sent)
    assert n.publisher.events[-1].type.endswith("person.erased")


def assigned_reps(n: Nurture, lead_ids: list[str]) -> list[str]:
    out = []
    for lead_id in lead_ids:
        a = n.store.leads[lead_id].assignment
        assert a is not None, f"{lead_id} was not assigned"
        out.append(a.rep_id)
    return out


async def test_a_batch_reads_the_reps_loads_once_and_spreads_its_leads_as_if_routed_one_batch_at_a_time():
    # US leads rotate over two reps by remaining capacity (20 and 12 a day): 12 leads reach both
    leads = [scored(f"ld_{i}", grade="A", domain=f"co{i}.io") for i in range(12)]
    ids = [s.lead_id for s in leads]
    together = Nurture()
    assert await together.batches.process([raw(s, f"ev-{i}", i) for i, s in enumerate(leads)]) == 12
    assert together.store.views_read == 1  # not one read per lead
    apart = Nurture()
    for i, s in enumerate(leads):
        await apart.batches.process([raw(s, f"ev-{i}", i)])
    assert apart.store.views_read == 12
    spread = sorted(assigned_reps(apart, ids))
    assert len(set(spread)) > 1, "the directory should spread these leads over more than one rep"
    assert sorted(assigned_reps(together, ids)) == spread
    assert together.store.used == apart.store.used


async def test_a_rep_another_replica_filled_after_the_batch_read_the_loads_is_tried_once_and_never_overfilled():
    n = Nurture()
    read = n.store.routing_view
    filled: list[str] = []

    async def then_another_replica_fills_ana(*args: Any, **kwargs: Any) -> Any:
        loads, owners = await read(*args, **kwargs)
        rep, day = next(iter(args[0]))  # the directory's first rep (Ana), today
        n.store.used[(rep, day)] = 10**6
        filled.append(rep)
        return loads, owners

    n.store.routing_view = then_another_replica_fills_ana  # type: ignore[method-assign]
    tried: list[str] = []
    reserve = n.store.reserve

    async def recording(lead_id: str, attempt: int, rep_id: str, *args: Any, **kwargs: Any) -> str | None:
        tried.append(rep_id)
        return await reserve(lead_id, attempt, rep_id, *args, **kwargs)

    n.store.reserve = recording  # type: ignore[method-assign]
    leads = [scored(f"ld_{i}", grade="A", domain=f"co{i}.io") for i in range(12)]
    assert await n.batches.process([raw(s, f"ev-{i}", i) for i, s in enumerate(leads)]) == 12
    assert n.store.views_read == 1
    (full,) = filled
    assert tried.count(full) == 1, "a rep found full was tried again in the same batch (or never)"
    assert full not in assigned_reps(n, [s.lead_id for s in leads])


async def test_a_domain_owned_in_the_store_routes_a_batch_lead_to_its_owner():
    n = Nurture()
    n.store.owners["owned.io"] = "rep-chloe"
    leads = [scored("ld_a", grade="A", domain="owned.io"), scored("ld_b", grade="A", domain="other.io")]
    assert await n.batches.process([raw(s, f"ev-{i}", i) for i, s in enumerate(leads)]) == 2
    assert n.store.views_read == 1
    a = n.store.leads["ld_a"].assignment
    assert a is not None and a.rep_id == "rep-chloe" and a.rule == "account_owner"
