"""The nurture rules over time, with a controllable clock (``now`` is passed in: nobody sleeps)."""

from datetime import UTC, datetime, timedelta

from schemas.base import Stage
from schemas.notification_outcome.v1 import NotificationOutcome
from services.nurture.domain.engine import Decision, Nurture
from services.nurture.domain.state import LeadState
from tests.unit.nurture.builders import MONDAY_10_NY, engine, response, route_first, scored

DAY = timedelta(days=1)


def run_until(n: Nurture, st: LeadState, until: datetime) -> tuple[LeadState, list[Decision]]:
    """Drive the scheduler: tick at every due time up to ``until`` (as the worker's loop would)."""
    out = []
    for _ in range(500):
        due = n.next_due(st)
        if due is None or due > until:
            break
        d = n.on_tick(st, due)
        if d.route is not None:
            d = route_first(n, d, due)
        out.append(d)
        st = d.state
    return st, out


def sent(decisions: list[Decision], audience: str = "lead") -> list:
    return [x for d in decisions for x in d.notifications if x.audience == audience]


def test_a_web_grade_a_lead_is_assigned_at_once_and_replied_to_within_a_minute():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY)
    assert d.route is not None
    d = route_first(n, d, MONDAY_10_NY)
    d.absorb(n.on_tick(d.state, MONDAY_10_NY))
    (a,) = d.assigned
    # Ben works in Los Angeles (07:00 there): the 15 working minutes start at his 09:00.
    assert a.rep_id == "rep-ben" and a.accept_by == datetime(2026, 5, 4, 16, 15, tzinfo=UTC)
    alert = next(x for x in d.notifications if x.template == "rep_alert")
    assert alert.links and alert.variables["lead"]["reasons"] == ["Director-level title", "Corporate email"]
    reply = next(x for x in d.notifications if x.template == "lead_reply")
    assert reply.variables == {"first_name": "Dana", "rep_name": a.rep_name}
    assert [c.to_stage for c in d.stage_changes] == [Stage.CAPTURED, Stage.ENGAGED, Stage.SALES_QUALIFIED]


def test_a_grade_a_reply_goes_out_at_once_even_on_a_sunday_night():
    n = engine()
    sunday_night = datetime(2026, 5, 11, 2, 0, tzinfo=UTC)
    d = n.on_scored(None, "ev1", scored(grade="A"), sunday_night)
    d = route_first(n, d, sunday_night)
    d.absorb(n.on_tick(d.state, sunday_night))
    assert [x.template for x in sent([d])] == ["lead_reply"]


def test_grade_b_touches_wait_for_the_leads_sending_window():
    n = engine()
    saturday = datetime(2026, 5, 9, 15, 0, tzinfo=UTC)
    d = n.on_scored(None, "ev1", scored(grade="B"), saturday)
    tick = n.on_tick(d.state, saturday)
    assert tick.notifications == [] and tick.deferred == 1
    assert tick.state.next_touch is not None
    assert tick.state.next_touch.due_at == datetime(2026, 5, 11, 13, 0, tzinfo=UTC)  # Monday 09:00 New York
    later = n.on_tick(tick.state, tick.state.next_touch.due_at)
    assert [x.notification_id for x in later.notifications] == [tick.state.next_touch.touch_id]


def test_touch_ids_are_stable_so_a_replayed_tick_requests_the_same_notification():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    first = n.on_tick(d.state, MONDAY_10_NY)
    again = n.on_tick(d.state, MONDAY_10_NY)
    assert [x.notification_id for x in first.notifications] == [x.notification_id for x in again.notifications]


def test_no_lead_gets_more_than_three_touches_a_week():
    n = engine(frequency_cap_per_week=3)
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    st = d.state
    st.touch_log = [MONDAY_10_NY - timedelta(hours=h) for h in (1, 2, 3)]  # three already this week
    tick = n.on_tick(st, MONDAY_10_NY)
    assert tick.notifications == []
    assert tick.state.next_touch is not None and tick.state.next_touch.due_at >= MONDAY_10_NY + 6 * DAY


def test_a_reply_stops_the_cadence_and_advances_the_stage():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    st, _ = run_until(n, d.state, MONDAY_10_NY + 4 * DAY)
    assert st.stage is Stage.ENGAGED and st.touches_sent == 2
    d = n.on_scored(st, "ev2", scored(grade="B", kind="email_replied"), MONDAY_10_NY + 4 * DAY)
    assert not d.state.cadence_active and d.state.cadence_stop_reason == "lead replied"
    assert [(c.from_stage, c.to_stage) for c in d.stage_changes] == [(Stage.ENGAGED, Stage.SALES_QUALIFIED)]
    assert n.next_due(d.state) is None
    _, later = run_until(n, d.state, MONDAY_10_NY + 60 * DAY)
    assert sent(later) == []


def test_a_booked_meeting_stops_the_cadence_and_makes_a_sales_qualified_lead_an_opportunity():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY)
    d = route_first(n, d, MONDAY_10_NY)
    assert d.state.stage is Stage.SALES_QUALIFIED
    d = n.on_scored(d.state, "ev2", scored(grade="A", kind="meeting_booked"), MONDAY_10_NY + DAY)
    assert d.state.stage is Stage.OPPORTUNITY and not d.state.cadence_active


def test_an_unsubscribe_stops_that_channel_for_good_but_not_the_others():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", phone="+14155550100"), MONDAY_10_NY)
    d = n.on_scored(d.state, "ev2", scored(grade="B", kind="unsubscribed", channel="email", phone="+14155550100"),
                    MONDAY_10_NY)  # fmt: skip
    assert d.state.suppressed_channels == ["email"]
    tick = n.on_tick(d.state, MONDAY_10_NY)
    assert [(x.channel, x.address) for x in tick.notifications] == [("sms", "+14155550100")]
    d = n.on_scored(tick.state, "ev3", scored(grade="B", phone="+14155550100"), MONDAY_10_NY + DAY)
    assert "email" in d.state.suppressed_channels  # a later score without the flag does not lift it


def test_a_complaint_on_the_only_channel_stops_the_cadence():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    d = n.on_scored(d.state, "ev2", scored(grade="B", kind="complained", channel="email"), MONDAY_10_NY)
    assert not d.state.cadence_active and "complained" in (d.state.cadence_stop_reason or "")
    assert n.on_tick(d.state, MONDAY_10_NY + 30 * DAY).notifications == []


def test_a_hard_bounce_marks_the_address_invalid_and_a_soft_one_does_not():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    soft = n.on_scored(d.state, "ev2", scored(grade="B", kind="email_bounced", bounce="soft"), MONDAY_10_NY)
    assert soft.state.invalid_addresses == []
    hard = n.on_scored(soft.state, "ev3", scored(grade="B", kind="email_bounced", bounce="hard"), MONDAY_10_NY)
    assert hard.state.invalid_addresses == ["ld_1@acme.io"]
    assert n.lead_channel(hard.state) is None


def test_a_suppressed_outcome_from_the_notifier_suppresses_the_channel():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    outcome = NotificationOutcome(notification_id="touch:x", lead_id="ld_1", status="suppressed", channel="email",
                                  audience="lead", attempts=0, completed_at=MONDAY_10_NY)  # fmt: skip
    d = n.on_outcome(d.state, "ev2", outcome, MONDAY_10_NY)
    assert d.state.suppressed_channels == ["email"] and not d.state.cadence_active


def test_gives_up_after_six_unanswered_touches_over_eight_weeks_and_recycles():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    st, decisions = run_until(n, d.state, MONDAY_10_NY + 7 * 8 * DAY + 7 * DAY)
    touches = sent(decisions)
    assert len(touches) == 6  # the sixth unanswered touch is the last one: no spamming until week 8
    assert st.stage is Stage.RECYCLED and (st.cadence_stop_reason or "").startswith("gave up")
    assert touches[-1].notification_id != touches[0].notification_id
    assert st.recycled_at is not None and st.recycled_at - MONDAY_10_NY >= 8 * 7 * DAY


def test_after_the_sixth_touch_the_lead_waits_out_the_eight_weeks_before_it_is_recycled():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    st, decisions = run_until(n, d.state, MONDAY_10_NY + 7 * 7 * DAY)
    assert len(sent(decisions)) == 6 and st.stage is not Stage.RECYCLED
    assert st.next_touch is not None and st.next_touch.due_at == st.first_unanswered_at + 8 * 7 * DAY
    # An answer inside the period keeps the lead: the count starts again.
    d = n.on_scored(st, "ev2", scored(grade="B", kind="email_replied"), MONDAY_10_NY + 7 * 7 * DAY)
    assert d.state.unanswered == 0 and d.state.stage is not Stage.RECYCLED


def test_any_answer_resets_the_unanswered_count():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    st, _ = run_until(n, d.state, MONDAY_10_NY + 20 * DAY)
    assert st.unanswered >= 4
    d = n.on_scored(st, "ev2", scored(grade="B", kind="email_clicked"), MONDAY_10_NY + 20 * DAY)
    assert d.state.unanswered == 0 and d.state.cadence_active


def test_a_recycled_lead_is_nurtured_again_after_ninety_days():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    st, _ = run_until(n, d.state, MONDAY_10_NY + 70 * DAY)
    assert st.stage is Stage.RECYCLED and st.recycled_at is not None
    recycled_at = st.recycled_at
    st, decisions = run_until(n, st, recycled_at + 89 * DAY)
    assert sent(decisions) == [] and st.stage is Stage.RECYCLED
    st, decisions = run_until(n, st, recycled_at + 91 * DAY)
    assert st.stage is Stage.ENGAGED and st.cycle == 1 and st.cadence_active
    assert sent(decisions) and all(":1:" in x.notification_id for x in sent(decisions))


def test_a_rep_who_does_not_accept_in_time_loses_the_lead_and_the_manager_is_told():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    first = d.state.assignment
    assert first is not None
    early = n.on_tick(d.state, first.accept_by - timedelta(seconds=1))
    assert early.route is None and early.sla_breaches == 0
    breach = n.on_tick(d.state, first.accept_by)
    assert breach.sla_breaches == 1 and breach.route is not None and breach.released == [(first.rep_id, "2026-05-04")]
    done = route_first(n, breach, first.accept_by)
    second = done.state.assignment
    assert second is not None and second.rep_id != first.rep_id and second.attempt == 2
    assert second.previous_rep_id == first.rep_id
    manager = next(x for x in done.notifications if x.template == "manager_sla_breach")
    assert manager.audience == "manager"
    assert manager.variables["rep_name"] == first.rep_name and manager.variables["next_rep_name"] == second.rep_name


def test_a_decline_reassigns_at_once():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    first = d.state.assignment
    assert first is not None
    declined = n.on_response(d.state, "ev2", response(d.state, "declined"), MONDAY_10_NY)
    assert declined.route is not None and declined.released
    done = route_first(n, declined, MONDAY_10_NY)
    assert done.state.assignment is not None and done.state.assignment.rep_id != first.rep_id
    assert [x.template for x in done.notifications] == ["rep_alert"]


def test_an_accepted_lead_keeps_its_rep_and_the_account_is_owned_from_then_on():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    accepted = n.on_response(d.state, "ev2", response(d.state, "accepted"), MONDAY_10_NY)
    assert accepted.state.assignment is not None and accepted.state.assignment.status == "accepted"
    assert accepted.owner_claim == ("acme.io", accepted.state.assignment.rep_id)
    assert n.on_tick(accepted.state, MONDAY_10_NY + DAY).sla_breaches == 0


def test_a_response_to_an_old_assignment_changes_nothing():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    old = response(d.state, "accepted")
    d = route_first(n, n.on_response(d.state, "ev2", response(d.state, "declined"), MONDAY_10_NY), MONDAY_10_NY)
    stale = n.on_response(d.state, "ev3", old, MONDAY_10_NY)
    assert stale.stale and stale.state.assignment == d.state.assignment


def test_a_hot_booth_lead_gets_a_rep_call_task_at_nine_local_on_the_first_working_day_after_the_show():
    n = engine()
    friday_show_end = "2026-05-08"
    d = n.on_scored(None, "ev1", scored(grade="B", source="booth_scan", rating="hot", show_ends_on=friday_show_end,
                                        tz="Europe/Paris", country="FR"), MONDAY_10_NY + 5 * DAY)  # fmt: skip
    d = route_first(n, d, MONDAY_10_NY + 5 * DAY)
    (task,) = [x for x in d.notifications if x.audience == "rep"]
    assert task.template == "rep_call_task" and task.links
    assert task.variables["call_at"] == "2026-05-11T07:00:00+00:00"  # Monday 09:00 Paris
    assert task.variables["show_name"] == "saastr-2026" and task.rep_id == "rep-chloe"


def test_a_purchase_makes_a_new_customer_and_starts_onboarding():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    d = n.on_scored(d.state, "ev2", scored(grade="B", kind="purchased"), MONDAY_10_NY)
    assert d.state.stage is Stage.NEW_CUSTOMER and d.state.playbook == "new_customer"
    tick = n.on_tick(d.state, MONDAY_10_NY)
    assert [x.template for x in tick.notifications] == ["onboarding"]
    d = n.on_scored(tick.state, "ev3", scored(grade="B", kind="purchased"), MONDAY_10_NY + DAY)
    d = n.on_scored(d.state, "ev4", scored(grade="B", kind="purchased"), MONDAY_10_NY + 2 * DAY)
    assert d.state.stage is Stage.LOYAL_CUSTOMER


def test_one_purchase_scored_twice_under_two_ids_counts_once_and_the_newer_profile_wins():
    # Scoring re-ran a batch after another replica changed the lead: the same purchase, a second
    # lead.scored id, the lead as stored (its new title).
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    d = n.on_scored(d.state, "ev2", scored(grade="B", kind="purchased", trigger_id="buy-1"), MONDAY_10_NY)
    again = scored(grade="B", kind="purchased", trigger_id="buy-1")
    again = again.model_copy(update={"profile": again.profile.model_copy(update={"job_title": "CFO"})})
    d = n.on_scored(d.state, "ev2-rerun", again, MONDAY_10_NY)
    assert d.state.purchases == 1 and d.state.stage is Stage.NEW_CUSTOMER
    assert d.state.lead.title == "CFO"
    d = n.on_scored(d.state, "ev3", scored(grade="B", kind="purchased", trigger_id="buy-2"), MONDAY_10_NY + DAY)
    assert d.state.purchases == 2  # another purchase does count


def test_an_illegal_transition_is_rejected_counted_and_never_applied():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="D"), MONDAY_10_NY)
    d.state.stage = Stage.DISQUALIFIED
    d = n.on_scored(d.state, "ev2", scored(grade="D", kind="meeting_booked"), MONDAY_10_NY)
    assert d.state.stage is Stage.DISQUALIFIED and d.state.illegal_transitions == 1
    assert len(d.illegal) == 1 and d.stage_changes == []


def test_the_same_event_twice_changes_nothing_the_second_time():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    again = n.on_scored(d.state, "ev1", scored(grade="B", kind="email_replied"), MONDAY_10_NY)
    assert again.duplicate and again.state == d.state and again.stage_changes == []


def test_a_grade_d_lead_gets_minimal_contact():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="D"), MONDAY_10_NY)
    assert d.state.stage is Stage.CAPTURED and d.route is None
    assert n.on_tick(d.state, MONDAY_10_NY).notifications == []
