"""The chaos audit on records built in memory: it passes a healthy pipeline and names each kind
of broken promise (a lost capture, a double send, a stale lead ...)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from leadpipe.runtime.kafka import new_topic
from schemas.codec import encode
from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested
from tests.chaos.audit import (
    CAPTURED,
    OUTCOME,
    REQUESTED,
    SCORED,
    Accepted,
    Observed,
    Rec,
    audit,
    dump,
    read_topics,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def capture(email: str | None, t: float, *, phone: str | None = None) -> Envelope[Any]:
    data = LeadCaptured(
        capture_id=uuid.uuid4().hex,
        source_kind="web_form",  # type: ignore[arg-type]
        captured_at=at(t),
        identity={"email": email, "phone": phone},  # type: ignore[arg-type]
    )
    return new_event(data, source="/tests", subject=f"key-{email or phone}")


def scored(
    lead: str, trigger: Envelope[Any], first: float, last: float, *, email: str | None = None,
    phone: str | None = None, merged: tuple[str, ...] = (), id: str | None = None, grade: str = "C",
) -> Envelope[Any]:  # fmt: skip
    data = LeadScored.model_validate(
        {
            "lead_id": lead,
            "scored_at": at(last),
            "model_version": "m1",
            "fit_score": 10,
            "engagement_score": 0,
            "score": 10,
            "grade": grade,
            "profile": {"email": email, "phone": phone},
            "capture": {"source_kind": "web_form", "first_captured_at": at(first), "last_captured_at": at(last)},
            "trigger": {"event_id": trigger.id, "event_type": trigger.type},
            "merged_lead_ids": merged,
        }
    )
    return new_event(data, source="/tests", subject=lead, id=id)


def requested(nid: str, *, not_before: datetime | None = None) -> Envelope[Any]:
    data = NotificationRequested.model_validate(
        {
            "notification_id": nid,
            "lead_id": "ld_1",
            "audience": "lead",
            "channel": "email",
            "recipient": {"address": "a@example.com"},
            "template": "lead_reply",
            "requested_at": T0,
            "not_before": not_before,
        }
    )
    return new_event(data, source="/tests", subject="ld_1")


def outcome(nid: str, status: str = "sent", *, id: str | None = None) -> Envelope[Any]:
    data = NotificationOutcome.model_validate(
        {
            "notification_id": nid,
            "lead_id": "ld_1",
            "status": status,
            "channel": "email",
            "audience": "lead",
            "attempts": 1,
            "completed_at": T0,
        }
    )
    return new_event(data, source="/tests", subject="ld_1", id=id or f"outcome-{nid}")


class World:
    """Topics and an outbox to fill with events, as the audit would read them."""

    def __init__(self) -> None:
        self.seen = Observed()
        self.accepted = Accepted()

    def put(self, topic: str, *events: Envelope[Any], partition: int = 0) -> None:
        recs = self.seen.records.setdefault(topic, [])
        for e in events:
            offset = sum(1 for r in recs if r.partition == partition)
            recs.append(Rec(topic, partition, offset, e))

    def accept(self, *captures: Envelope[Any]) -> None:
        self.put(CAPTURED, *captures)
        self.accepted.captures.extend(c.id for c in captures)

    def send(self, nid: str) -> None:
        self.seen.sends.append({"notification_id": nid, "channel": "email"})

    def report(self) -> Any:
        return audit(self.accepted, self.seen, now=at(3600))


def healthy() -> World:
    w = World()
    a1, a2 = capture("ann@example.com", 1), capture("ann@example.com", 5)
    b = capture("bob@example.com", 2)
    w.accept(a1, b, a2)
    w.put(SCORED, scored("ld_a", a1, 1, 1, email="ann@example.com"), scored("ld_b", b, 2, 2, email="bob@example.com"))
    w.put(SCORED, scored("ld_a", a2, 1, 5, email="ann@example.com"))
    w.put(REQUESTED, requested("touch:ld_a:0"), requested("alert:ld_a.a1"))
    w.put(OUTCOME, outcome("touch:ld_a:0"), outcome("alert:ld_a.a1"))
    w.send("touch:ld_a:0")
    w.send("alert:ld_a.a1")
    return w


def test_a_healthy_pipeline_passes_the_audit():
    report = healthy().report()
    assert report.ok, report.summary()
    assert report.stats["accepted_captures"] == 3 and report.stats["leads_current"] == 2
    assert "audit OK" in report.summary()


def test_an_accepted_capture_missing_from_the_topic_is_reported_lost():
    w = healthy()
    lost = capture("cat@example.com", 7)
    w.accepted.captures.append(lost.id)  # 202 given, but never reached lead.captured
    report = w.report()
    assert report.kinds() == {"lost_capture": 1}
    assert lost.id in report.problems[0].detail
    assert "lost_capture" in report.summary()


def test_an_accepted_engagement_missing_from_the_topic_is_reported_lost():
    w = healthy()
    w.accepted.engagements.append("eng-1")
    assert w.report().kinds() == {"lost_engagement": 1}


def test_a_notification_handed_to_the_channel_twice_is_a_double_send():
    w = healthy()
    w.send("touch:ld_a:0")
    report = w.report()
    assert report.kinds() == {"double_send": 1}
    assert "touch:ld_a:0" in report.problems[0].detail


def test_two_sent_outcomes_with_different_ids_are_a_double_send_but_a_redelivered_outcome_is_not():
    w = healthy()
    w.put(OUTCOME, outcome("alert:ld_a.a1"))  # the same outcome event again: at-least-once
    assert w.report().ok
    w.put(OUTCOME, outcome("alert:ld_a.a1", id="another-id"))
    assert w.report().kinds() == {"double_send": 1}


def test_a_request_without_outcome_and_conflicting_outcomes_are_reported():
    w = healthy()
    w.put(REQUESTED, requested("touch:ld_b:0"), requested("later", not_before=at(7200)))
    w.put(OUTCOME, outcome("alert:ld_a.a1", "failed", id="x"))
    report = w.report()
    assert report.kinds() == {"missing_outcome": 1, "conflicting_outcomes": 1}
    assert report.stats["notifications_pending"] == 1  # not due yet: not counted as missing


def test_a_send_nobody_requested_is_reported():
    w = healthy()
    w.send("ghost")
    assert w.report().kinds() == {"send_without_request": 1}


def test_a_capture_that_never_produced_a_lead_scored_is_reported():
    w = healthy()
    c = capture("cat@example.com", 9)
    w.accept(c)
    report = w.report()
    assert report.kinds() == {"unscored_capture": 1}
    assert c.id in report.problems[0].detail


def test_a_current_lead_scored_that_forgot_earlier_captures_is_stale():
    w = healthy()
    a3 = capture("ann@example.com", 20)
    w.accept(a3)
    # Scoring lost Ann's state (e.g. an empty Redis) and scored her as new: first seen at 20.
    w.put(SCORED, scored("ld_a", a3, 20, 20, email="ann@example.com"))
    report = w.report()
    assert report.kinds() == {"stale_current": 2}  # both earlier captures are no longer reflected
    assert "starts at" in report.problems[0].detail


def test_a_current_lead_scored_without_the_captures_email_is_stale():
    w = World()
    a = capture("ann@example.com", 1)
    w.accept(a)
    w.put(SCORED, scored("ld_a", a, 1, 1, email="someone-else@example.com"))
    assert w.report().kinds() == {"stale_current": 1}


def known_three_ways(w: World, email: str, phone: str) -> tuple[Envelope[Any], Envelope[Any], Envelope[Any]]:
    """One person's accepted captures: by email at 1, by phone only at 2, by both at 3."""
    by_email, by_phone, both = capture(email, 1), capture(None, 2, phone=phone), capture(email, 3, phone=phone)
    w.accept(by_email, by_phone, both)
    return by_email, by_phone, both


def test_merged_leads_are_followed_to_the_survivor():
    w = World()
    by_email, by_phone, both = known_three_ways(w, "dan@example.com", "+33612000001")
    w.put(SCORED, scored("ld_e", by_email, 1, 1, email="dan@example.com"))
    w.put(SCORED, scored("ld_p", by_phone, 2, 2, phone="+33612000001"), partition=1)
    w.put(SCORED, scored("ld_e", both, 1, 3, email="dan@example.com", phone="+33612000001", merged=("ld_p",)))
    report = w.report()
    assert report.ok, report.summary()
    assert report.stats["leads_current"] == 1


def test_an_older_capture_from_another_partition_may_be_absorbed_without_its_own_lead_scored():
    w = World()
    first, _phone_only, both = known_three_ways(w, "eve@example.com", "+33612000002")  # phone-only after `both`
    w.put(SCORED, scored("ld_e", first, 1, 1, email="eve@example.com"))
    w.put(SCORED, scored("ld_e", both, 1, 3, email="eve@example.com", phone="+33612000002"))
    report = w.report()
    assert report.ok, report.summary()
    assert report.stats["captures_absorbed"] == 1


def test_an_unscored_repeat_under_the_same_key_is_not_excused_by_a_newer_capture():
    w = healthy()
    middle = capture("ann@example.com", 3)  # same key as a1/a2: the partition keeps their order
    w.accept(middle)
    assert w.report().kinds() == {"unscored_capture": 1}


def test_one_capture_scored_into_two_leads_is_a_split():
    w = healthy()
    c = capture("fay@example.com", 4)
    w.accept(c)
    w.put(SCORED, scored("ld_f", c, 4, 4, email="fay@example.com"), scored("ld_g", c, 4, 4, email="fay@example.com"))
    assert w.report().kinds() == {"split_capture": 1}


def test_a_capture_scored_again_for_its_lead_after_a_conflict_is_judged_by_the_later_record():
    # scoring-2 published for the phone-only capture from a lead it read before scoring-1 merged
    # Gus's email lead into it (no email, ends at 2); its write conflicted, and the re-run
    # published the lead as stored, under another id.
    w = World()
    by_email, by_phone, both = known_three_ways(w, "gus@example.com", "+33612000003")
    w.put(SCORED, scored("ld_e", by_email, 1, 1, email="gus@example.com"), partition=1)
    w.put(SCORED, scored("ld_p", both, 1, 3, email="gus@example.com", phone="+33612000003", merged=("ld_e",)))
    w.put(SCORED, scored("ld_p", by_phone, 2, 2, phone="+33612000003", id="abandoned-attempt"))
    stale = w.report()
    assert stale.kinds() == {"stale_current": 2}, stale.summary()  # Gus's email captures: no email
    w.put(SCORED, scored("ld_p", by_phone, 1, 3, email="gus@example.com", phone="+33612000003", id="re-run"))
    report = w.report()
    assert report.ok, report.summary()


def test_redelivered_lead_scored_records_are_one_event():
    w = healthy()
    again = w.seen.records[SCORED][0].event
    assert again is not None
    w.put(SCORED, again)
    report = w.report()
    assert report.ok and report.stats["scored_records_duplicated"] == 1


def test_a_valid_event_in_a_dead_letter_topic_is_reported_and_garbage_is_not():
    w = healthy()
    w.put("lead.captured.v1.dlq", capture("gil@example.com", 1))
    w.seen.records["lead.scored.v1.dlq"] = [Rec("lead.scored.v1.dlq", 0, 0, None, "data: not JSON")]
    report = w.report()
    assert report.kinds() == {"dead_lettered": 1}
    assert report.stats["dead_letters"] == 2


def test_an_undecodable_record_on_a_pipeline_topic_is_reported():
    w = healthy()
    w.seen.records[SCORED].append(Rec(SCORED, 5, 0, None, "header ce_id: missing"))
    assert w.report().kinds() == {"undecodable": 1}


def test_what_the_audit_saw_can_be_dumped_and_the_accepted_ids_reloaded(tmp_path: Path):
    w = healthy()
    w.accepted.engagements.append("eng-1")
    dump(w.accepted, w.seen, tmp_path)
    assert Accepted.load(tmp_path / "accepted.jsonl") == w.accepted
    assert len((tmp_path / f"{SCORED}.jsonl").read_text().splitlines()) == 3
    assert len((tmp_path / "sends.jsonl").read_text().splitlines()) == 2


async def test_the_reader_gets_every_record_of_a_multi_record_batch(kafka_bootstrap: str, unique: str):
    """Tansu reports a partition's end as the last batch's base offset + 1: a reader stopping
    at the end offsets would miss the rest of that batch."""
    topic = f"audit-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([new_topic(topic, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        events = [capture(f"h{i}@example.com", i) for i in range(3)]
        records = [encode(e) for e in events]
        sent = [await producer.send(topic, r.value, key=r.key, headers=r.headers, partition=0) for r in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    got = (await read_topics(kafka_bootstrap, [topic]))[topic]
    assert [r.event.id for r in got if r.event is not None] == [e.id for e in events]


# -- nurture: every sales-ready lead routed and alerted, every due touch requested ---------------


def _rep_alert(nid: str, lead: str) -> Envelope[Any]:
    data = NotificationRequested.model_validate(
        {
            "notification_id": nid, "lead_id": lead, "audience": "rep", "channel": "email",
            "recipient": {"address": "rep@example.com"}, "template": "rep_alert", "requested_at": T0,
        }
    )  # fmt: skip
    return new_event(data, source="/tests", subject=lead)


def with_nurture() -> World:
    """``healthy()`` plus grade-A ``ld_h``, assigned with its alert requested, and nurture's states."""
    w = healthy()
    h = capture("hot@example.com", 3)
    w.accept(h)
    w.put(SCORED, scored("ld_h", h, 3, 3, email="hot@example.com", grade="A"))
    w.put(REQUESTED, _rep_alert("alert:ld_h.a1", "ld_h"))
    w.put(OUTCOME, outcome("alert:ld_h.a1"))
    w.send("alert:ld_h.a1")
    w.seen.nurture_states = {
        "ld_h": {"lead_id": "ld_h", "assignment": {"assignment_id": "ld_h.a1"}, "cadence_active": False},
        "ld_a": {"lead_id": "ld_a", "cadence_active": True,
                 "next_touch": {"touch_id": "touch:ld_a:1", "due_at": at(3600 + 3600).isoformat()}},
    }  # fmt: skip
    return w


def test_a_healthy_nurture_passes_the_audit():
    report = with_nurture().report()
    assert report.ok, report.summary()
    assert report.stats["sales_ready_leads"] == 1


def test_a_sales_ready_lead_that_nurture_never_routed_is_reported():
    w = with_nurture()
    assert w.seen.nurture_states is not None
    del w.seen.nurture_states["ld_h"]  # lead.scored consumed, nothing decided: lost in between
    report = w.report()
    assert report.kinds() == {"unrouted_sales_ready": 1}
    assert "ld_h" in report.problems[0].detail


def test_a_queued_sales_ready_lead_is_routed():
    w = with_nurture()
    assert w.seen.nurture_states is not None
    w.seen.nurture_states["ld_h"] = {"lead_id": "ld_h", "assignment": None, "wants_rep": True}
    assert w.report().ok


def test_an_assignment_without_its_rep_alert_is_reported():
    w = with_nurture()
    assert w.seen.nurture_states is not None
    w.seen.nurture_states["ld_h"]["assignment"] = {"assignment_id": "ld_h.a2"}  # reassigned, never alerted
    assert w.report().kinds() == {"missing_rep_alert": 1}


def test_a_touch_long_past_due_is_reported_overdue():
    w = with_nurture()
    assert w.seen.nurture_states is not None
    w.seen.nurture_states["ld_a"]["next_touch"]["due_at"] = at(3600 - 120).isoformat()
    report = w.report()
    assert report.kinds() == {"overdue_touch": 1}
    assert "touch:ld_a:1" in report.problems[0].detail
