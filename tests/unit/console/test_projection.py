"""The console's projection rules, with no fixtures."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from services.console.domain.access import User, can_see, check_password, hash_password, users_from_team
from services.console.domain.facts import to_fact
from services.console.domain.projection import LeadRow, fold, percentile, sla_seconds_left, work_order
from services.console.domain.reporting import about_to_give_up, breaches, funnel, queue, speed_to_lead

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def scored(minutes: float, grade: str = "A", eid: str = "s1") -> object:
    return to_fact(
        "lead.scored",
        eid,
        at(minutes),
        {
            "lead_id": "L1",
            "grade": grade,
            "score": 81.0,
            "core_account": True,
            "model_version": "m1",
            "reasons": [
                {"rule_id": "r1", "description": "VP title", "points": 20, "component": "fit"},
                {"rule_id": "r2", "description": "500+ staff", "points": 30, "component": "fit"},
            ],
            "profile": {"full_name": "Jo Doe", "email": "jo@acme.test", "company": "Acme"},
            "capture": {"source_kind": "web_form", "first_captured_at": at(0).isoformat()},
            "trigger": {"event_id": "c1", "event_type": "dev.leadpipe.lead.captured"},
        },
    )


def assigned(minutes: float, aid: str = "a1", rep: str = "rep-ana", eid: str = "as1") -> object:
    return to_fact(
        "lead.assigned",
        eid,
        at(minutes),
        {
            "assignment_id": aid,
            "lead_id": "L1",
            "rep_id": rep,
            "team": "amer",
            "rule": "rotation",
            "reason": "next in rotation",
            "assigned_at": at(minutes).isoformat(),
            "accept_by": at(minutes + 15).isoformat(),
        },
    )


def response(minutes: float, answer: str = "accepted", aid: str = "a1", eid: str = "r1") -> object:
    data = {"assignment_id": aid, "lead_id": "L1", "rep_id": "rep-ana", "response": answer}
    return to_fact("assignment.response", eid, at(minutes), data | {"responded_at": at(minutes).isoformat()})


def rep_alert(minutes: float, eid: str = "n1") -> object:
    data = {"lead_id": "L1", "status": "sent", "audience": "rep", "channel": "email", "assignment_id": "a1"}
    return to_fact("notification.outcome", eid, at(minutes), data | {"template": "rep_alert", "attempts": 1})


def test_a_lead_row_is_the_same_whatever_order_its_events_arrive_in() -> None:
    facts = [scored(1), assigned(2), rep_alert(2.5), response(5)]
    rows = {fold("L1", list(p)) for p in itertools.permutations(facts)}  # type: ignore[arg-type]
    assert len(rows) == 1


def test_an_event_seen_twice_counts_once() -> None:
    facts = [scored(1), assigned(2), response(5)]
    assert fold("L1", facts + facts) == fold("L1", facts)  # type: ignore[arg-type]


def test_scoring_gives_grade_reasons_strongest_first_and_the_core_flag() -> None:
    row = fold("L1", [scored(1)])  # type: ignore[list-item]
    assert (row.grade, row.core_account, row.name) == ("A", True, "Jo Doe")
    assert row.reasons == ("500+ staff (+30)", "VP title (+20)")
    assert row.captured_at == at(0)


def test_an_accepted_assignment_records_speed_to_lead() -> None:
    row = fold("L1", [scored(1), assigned(2), rep_alert(2.5), response(5)])  # type: ignore[list-item]
    assert row.assignment_status == "accepted"
    assert (row.alerted_at, row.accepted_at, row.sla_breached) == (at(2.5), at(5), False)


def test_an_answer_to_an_earlier_assignment_does_not_change_the_current_one() -> None:
    row = fold("L1", [assigned(2, aid="a2", eid="as2"), response(5, aid="a1")])  # type: ignore[list-item]
    assert row.assignment_status == "pending"


def test_accepting_after_the_window_is_an_sla_breach() -> None:
    row = fold("L1", [assigned(2), response(30)])  # type: ignore[list-item]
    assert row.sla_breached


def test_a_logged_meeting_is_the_last_contact() -> None:
    eng = to_fact(
        "lead.engagement",
        "e1",
        at(9),
        {"kind": "meeting_booked", "provider": "console", "channel": "phone", "identity": {"email": "jo@acme.test"}},
    )
    row = fold("L1", [scored(1), eng])  # type: ignore[list-item]
    assert (row.last_contact_at, row.last_outcome) == (at(9), "meeting_booked")


def test_a_rep_sees_only_leads_assigned_to_them() -> None:
    row = fold("L1", [scored(1), assigned(2)])  # type: ignore[list-item]
    assert can_see(User("rep-ana", "Ana", "rep", ("amer",)), row)
    assert not can_see(User("rep-ben", "Ben", "rep", ("amer",)), row)
    declined = fold("L1", [scored(1), assigned(2), response(3, "declined")])  # type: ignore[list-item]
    assert not can_see(User("rep-ana", "Ana", "rep", ("amer",)), declined)
    assert can_see(User("mgr-amer", "Riley", "manager", ("amer",)), row)
    assert not can_see(User("mgr-emea", "Morgan", "manager", ("emea",)), row)


def test_users_come_from_the_sales_team_directory() -> None:
    users = users_from_team(
        {
            "managers": [{"id": "m1", "name": "M"}],
            "teams": [{"id": "t1", "manager": "m1"}, {"id": "t2", "manager": "m1"}],
            "reps": [{"id": "r1", "name": "R", "team": "t1"}],
        }
    )
    assert users["m1"] == User("m1", "M", "manager", ("t1", "t2"))
    assert users["r1"].role == "rep"


def test_passwords_are_checked_against_salted_hashes() -> None:
    stored = hash_password("s3cret", iterations=1000)
    assert check_password("s3cret", stored)
    assert not check_password("wrong", stored)
    assert not check_password("s3cret", "garbage")


def test_pending_answers_come_first_by_sla_countdown() -> None:
    now = at(10)
    soon = LeadRow("a", assignment_status="pending", accept_by=at(12))
    later = LeadRow("b", assignment_status="pending", accept_by=at(20))
    done = LeadRow("c", assignment_status="accepted", grade="A", core_account=True)
    assert sorted([done, later, soon], key=lambda r: work_order(r, now)) == [soon, later, done]
    assert sla_seconds_left(soon, now) == 120


def test_manager_numbers() -> None:
    rows = [
        fold("L1", [scored(1), assigned(2), rep_alert(2.5), response(5)]),  # type: ignore[list-item]
        LeadRow("L2", stage="engaged", grade="B", source_kind="booth_scan", queued_at=at(3), score=50),
        LeadRow("L3", rep_id="rep-ben", assignment_status="pending", accept_by=at(1), captured_at=at(0)),
    ]
    by = funnel(rows)
    assert by["grade"] == {"A": 1, "B": 1, "-": 1}
    assert by["source"]["booth_scan"] == 1
    assert [r.lead_id for r in queue(rows)] == ["L2"]
    assert [r.lead_id for r in breaches(rows, at(10))] == ["L3"]
    ana = next(s for s in speed_to_lead(rows) if s.rep_id == "rep-ana")
    assert (ana.to_alert_p50, ana.to_accept_p90) == (150.0, 300.0)


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert (percentile(values, 50), percentile(values, 90), percentile([], 50)) == (5.0, 9.0, None)


def lead_touch(minutes: float, eid: str) -> object:
    data = {"lead_id": "L1", "status": "sent", "audience": "lead", "channel": "email", "attempts": 1}
    return to_fact("notification.outcome", eid, at(minutes), data | {"template": "nurture_b_1"})


def test_unanswered_touches_count_until_the_lead_answers() -> None:
    touches = [lead_touch(i, f"t{i}") for i in range(5)]
    assert fold("L1", touches).unanswered_touches == 5  # type: ignore[arg-type]
    click = to_fact("lead.engagement", "c", at(5.5), {"kind": "email_clicked", "channel": "email"})
    row = fold("L1", [*touches, click, lead_touch(6, "t6")])  # type: ignore[list-item]
    assert row.unanswered_touches == 1


def test_a_manager_sees_active_leads_two_touches_from_being_given_up() -> None:
    near = LeadRow("near", stage="engaged", unanswered_touches=4)
    fresh = LeadRow("fresh", stage="engaged", unanswered_touches=1)
    recycled = LeadRow("gone", stage="recycled", unanswered_touches=6)
    assert [r.lead_id for r in about_to_give_up([near, fresh, recycled], give_up_after=6)] == ["near"]


def test_a_reps_verdict_is_the_last_outcome_and_on_the_timeline() -> None:
    verdict = to_fact(
        "lead.outcome_logged",
        "v1",
        at(20),
        {"lead_id": "L1", "rep_id": "rep-ana", "outcome": "not_interested", "note": "no budget"},
    )
    row = fold("L1", [scored(1), verdict])  # type: ignore[list-item]
    assert (row.last_outcome, row.last_contact_at) == ("not_interested", at(20))
    assert verdict.summary == "rep-ana logged not interested: no budget"  # type: ignore[attr-defined]


def test_the_next_touch_is_the_one_nurtures_latest_stage_change_or_request_names() -> None:
    def stage(minutes: float, to: str, next_at: datetime | None, eid: str) -> object:
        data = {"lead_id": "L1", "from_stage": "captured", "to_stage": to, "reason": "r", "changed_at": at(minutes)}
        return to_fact(
            "lead.stage_changed", eid, at(minutes), data | {"next_touch_at": next_at and next_at.isoformat()}
        )

    def request(minutes: float, next_at: datetime | None, eid: str) -> object:
        data = {"lead_id": "L1", "audience": "lead", "channel": "email", "template": "nurture_content",
                "touch": {"playbook": "p", "playbook_version": "1", "step": 0},
                "recipient": {"address": "jo@acme.test"}, "variables": {"first_name": "Jo"}}  # fmt: skip
        return to_fact(
            "notification.requested", eid, at(minutes), data | {"next_touch_at": next_at and next_at.isoformat()}
        )

    started = [scored(0), stage(0, "engaged", at(0), "st1"), request(1, at(60 * 24 * 3), "rq1")]
    assert "recipient" not in started[2].data and "variables" not in started[2].data  # type: ignore[attr-defined]
    assert fold("L1", started).next_touch_at == at(60 * 24 * 3)
    assert "nurture_content to lead by email requested (cadence step 1)" in started[2].summary  # type: ignore[attr-defined]
    stopped = [*started, stage(90, "opportunity", None, "st2")]
    for order in itertools.permutations(stopped):
        assert fold("L1", order).next_touch_at is None  # type: ignore[arg-type]
