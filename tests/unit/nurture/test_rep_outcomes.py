"""A rep's logged verdict (``lead.outcome_logged``): the cadence stops, the lead leaves the funnel."""

from __future__ import annotations

from schemas.base import Stage
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from services.nurture.domain.engine import Nurture
from services.nurture.domain.state import LeadState
from tests.unit.nurture.builders import MONDAY_10_NY, engine, response, route_first, scored


def assigned_lead(n: Nurture) -> LeadState:
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    return n.on_response(d.state, "ev2", response(d.state, "accepted"), MONDAY_10_NY).state


def verdict(state: LeadState, outcome: str, rep_id: str | None = None) -> LeadOutcomeLogged:
    assert state.assignment is not None
    return LeadOutcomeLogged(
        outcome_id="o1",
        lead_id=state.lead_id,
        rep_id=rep_id or state.assignment.rep_id,
        outcome=outcome,  # type: ignore[arg-type]
        logged_at=MONDAY_10_NY,
    )


def test_not_interested_stops_the_cadence_and_disqualifies_the_lead() -> None:
    n = engine()
    st = assigned_lead(n)
    d = n.on_rep_outcome(st, "ev3", verdict(st, "not_interested"), MONDAY_10_NY)
    assert not d.state.cadence_active and d.state.next_touch is None
    assert d.state.cadence_stop_reason is not None and "not interested" in d.state.cadence_stop_reason
    assert [c.to_stage for c in d.stage_changes] == [Stage.DISQUALIFIED]


def test_a_lost_deal_recycles_the_lead_for_a_later_effort() -> None:
    n = engine()
    st = assigned_lead(n)
    d = n.on_rep_outcome(st, "ev3", verdict(st, "lost"), MONDAY_10_NY)
    assert [c.to_stage for c in d.stage_changes] == [Stage.RECYCLED]
    assert d.state.recycled_at == MONDAY_10_NY and not d.state.cadence_active


def test_only_the_assigned_rep_decides_and_a_replay_changes_nothing() -> None:
    n = engine()
    st = assigned_lead(n)
    other = n.on_rep_outcome(st, "ev3", verdict(st, "lost", rep_id="rep-someone-else"), MONDAY_10_NY)
    assert other.stale and other.state.stage == st.stage
    done = n.on_rep_outcome(st, "ev4", verdict(st, "lost"), MONDAY_10_NY)
    again = n.on_rep_outcome(done.state, "ev4", verdict(st, "lost"), MONDAY_10_NY)
    assert again.duplicate and not again.stage_changes
