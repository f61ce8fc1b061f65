"""The scoring handlers through the runtime's batch mode, against fakes of their ports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from leadpipe.runtime.stream import BatchProcessor, RawMessage
from schemas.codec import encode
from schemas.envelope import new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.scoring.handlers import Eraser, Scorer, ScoringBatch
from tests.fakes import FakePublisher, event_processor
from tests.unit.scoring.fakes import FakeLeadStore, FakeStateLog, QuietObserver, ReplicaView
from tests.unit.scoring.leads import MODEL, REF, T0, capture

EXPECTED: dict[str, Any] = {"lead.captured.v1": LeadCaptured, "lead.engagement.v1": LeadEngagement}


def msg(data: Any, event_id: str, offset: int = 0) -> RawMessage:
    rec = encode(new_event(data, source="/t", subject="k", id=event_id))
    return RawMessage(data.topic(), 0, offset, rec.key, rec.value, rec.headers)


class Scoring:
    def __init__(self, store: FakeLeadStore | None = None) -> None:
        self.publisher = FakePublisher()
        self.store = FakeLeadStore() if store is None else ReplicaView(store)
        self.store.log = self.publisher.log
        self.state_log = FakeStateLog(self.publisher.log)
        self.observer = QuietObserver()

        async def built() -> None: ...

        self.handler = ScoringBatch(scorer=Scorer(MODEL, REF, self.observer, clock=lambda: T0), store=self.store,
                                    state_log=self.state_log, publisher=self.publisher, ensure_built=built)  # fmt: skip
        self.batches = BatchProcessor(event_processor("scoring", self.publisher), self.handler, EXPECTED,
                                      retry="batch")  # fmt: skip


async def test_outputs_are_acknowledged_before_the_state_topic_and_redis_are_written():
    s = Scoring()
    assert await s.batches.process([msg(capture(email="ana@acme.com"), "e-1")]) == 1
    assert s.publisher.topics() == ["lead.scored.v1"]
    assert s.publisher.log[-4:] == ["send lead.scored.v1", "flush", "state topic 1", "write"]
    assert len(s.store.leads) == 1


async def test_a_replayed_batch_is_counted_once_and_publishes_nothing_new():
    s = Scoring()
    batch = [msg(capture(email="ana@acme.com"), "e-1")]
    await s.batches.process(batch)
    await s.batches.process(batch)
    assert s.publisher.topics() == ["lead.scored.v1"] and s.observer.duplicates == 1


async def test_an_event_that_identifies_nobody_is_dead_lettered_and_its_batch_mates_are_scored():
    s = Scoring()
    nobody = capture(email=None, phone=None, capture_id="c-2")
    handled = await s.batches.process([msg(nobody, "e-0"), msg(capture(email="ana@acme.com"), "e-1", offset=1)])
    assert handled == 1
    assert s.publisher.dead_letters() == ["lead.captured.v1.dlq"] and s.publisher.topics() == ["lead.scored.v1"]


async def test_a_batch_whose_leads_changed_under_it_runs_again_and_loses_nothing():
    s = Scoring()
    real_read = s.store.read

    async def read_then_someone_writes(identifiers: Any) -> Any:
        snap = await real_read(identifiers)
        if s.store.version == 0:
            s.store.version = 1  # another worker wrote between this read and the write
        return snap

    s.store.read = read_then_someone_writes  # type: ignore[method-assign]
    assert await s.batches.process([msg(capture(email="ana@acme.com"), "e-1")]) == 1
    assert s.publisher.log.count("write") == 1 and len(s.store.leads) == 1
    assert s.publisher.topics() == ["lead.scored.v1", "lead.scored.v1"]  # the same id again: consumers dedupe
    assert len({e.id for e in s.publisher.events}) == 1


async def test_a_rerun_after_another_worker_merged_the_lead_publishes_the_stored_lead_under_a_new_id():
    # Gus gave only his mobile at a booth (the older lead), then his email on a form. Two workers:
    # worker 2 reads its batch (another phone-only scan: the phone's lead, no email), worker 1 then
    # merges the email lead into the phone's lead with Gus's email+phone form, and worker 2 has
    # already published from what it read when its write conflicts.
    one = Scoring()
    two = Scoring(one.store)
    mobile = "+33612000003"
    scan = capture(email=None, phone=mobile, capture_id="c-1", at=T0)
    form = capture(email="gus@acme.com", capture_id="c-2", at=T0 + timedelta(minutes=1))
    await one.batches.process([msg(scan, "e-1"), msg(form, "e-2", offset=1)])
    # Newer than the rescan: the re-run's rescan only fills gaps and changes nothing stored.
    both = capture(email="gus@acme.com", phone=mobile, title="VP Sales", capture_id="c-4", at=T0 + timedelta(minutes=3))
    rescan = capture(email=None, phone=mobile, title="CTO", capture_id="c-3", at=T0 + timedelta(minutes=2))
    real_read = two.store.read

    async def read_then_the_other_worker_merges(identifiers: Any) -> Any:
        snap = await real_read(identifiers)
        if not one.publisher.events[2:]:
            await one.batches.process([msg(both, "e-4")])
        return snap

    two.store.read = read_then_the_other_worker_merges  # type: ignore[method-assign]
    assert await two.batches.process([msg(rescan, "e-3")]) == 1

    merged = one.publisher.events[2]
    assert merged.data.merged_lead_ids and merged.data.profile.email == "gus@acme.com"
    abandoned, rerun = two.publisher.events  # both on the topic: the first was flushed before the write
    assert abandoned.data.lead_id == rerun.data.lead_id == merged.data.lead_id
    assert abandoned.data.profile.email is None  # what worker 2 had read: never stored
    assert rerun.id != abandoned.id  # consumers would drop the corrected one as a duplicate otherwise
    stored = one.store.leads[rerun.data.lead_id]
    assert rerun.data.profile.email == stored.email == "gus@acme.com"
    assert rerun.data.profile.job_title == stored.job_title == "VP Sales" != abandoned.data.profile.job_title
    assert rerun.data.capture.last_captured_at == stored.last_captured_at == T0 + timedelta(minutes=3)


async def test_a_broker_away_at_the_flush_reruns_the_batch_and_then_writes_it_once():
    s = Scoring()
    s.publisher.fail = ConnectionError("broker away")
    assert await s.batches.process([msg(capture(email="ana@acme.com"), "e-1")]) == 1
    assert s.publisher.topics() == ["lead.scored.v1"] and s.publisher.log.count("write") == 1


async def test_an_erasure_deletes_the_lead_tombstones_it_and_publishes_a_receipt():
    s = Scoring()
    await s.batches.process([msg(capture(email="ana@acme.com"), "e-1")])
    [lead_id] = s.store.leads
    eraser = Eraser(s.store, s.state_log, s.publisher, clock=lambda: T0)
    req = PersonErasureRequested(request_id="r-1", requested_at=T0, requested_by="cli:test",
                                 subject_hash="0" * 64, email="ana@acme.com")  # fmt: skip
    assert await event_processor("scoring", s.publisher).process(msg(req, "e-9"), PersonErasureRequested, eraser.handle)
    assert s.store.leads == {} and (lead_id, None) in s.state_log.appended
    assert s.publisher.topics()[-1] == "person.erased.v1"
