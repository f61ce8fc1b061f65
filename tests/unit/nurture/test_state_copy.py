"""``LeadState.copied``: the engine's copy of a state it decides on is a full, independent copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.base import BoothRating, Grade, SourceKind, Stage
from services.nurture.domain.state import Assignment, ConsentNote, LeadState, LeadView, Queued, ScheduledTouch

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def full_state() -> LeadState:
    """A state with every nested part set (and a non-default value in each list)."""
    return LeadState(
        lead_id="lead-1",
        version=7,
        lead=LeadView(
            name="Ana Li",
            email="ana@example.com",
            grade=Grade.A,
            score=91.5,
            reasons=["demo +40"],
            source_kind=SourceKind.BOOTH_SCAN,
            booth_rating=BoothRating.HOT,
            product_interest=["api"],
            consent_channels=["email"],
            consent_given_at=NOW,
            first_captured_at=NOW,
        ),
        stage=Stage.SALES_QUALIFIED,
        playbook="demo",
        cadence_started_at=NOW,
        cadence_active=True,
        next_touch=ScheduledTouch(touch_id="t1", step=2, template="follow_up", due_at=NOW + timedelta(days=7)),
        touch_log=[NOW - timedelta(days=7), NOW],
        suppressed_channels=["sms"],
        assignment=Assignment(
            assignment_id="as-1",
            rep_id="rep-1",
            rule="territory",
            reason="US",
            attempt=1,
            assigned_at=NOW,
            accept_by=NOW + timedelta(minutes=5),
            status="accepted",
        ),
        tried_reps=["rep-0"],
        queued=Queued(team="us", since=NOW, grade=Grade.A, score=91.5),
        seen=[f"evt-{i}" for i in range(20)],
        consent_notes=[ConsentNote(at=NOW, channel="sms", reason="no consent")],
    )


def test_the_copy_equals_the_state_and_keeps_its_types() -> None:
    state = full_state()
    copy = state.copied()
    assert copy == state
    assert copy is not state
    assert copy.stage is Stage.SALES_QUALIFIED and copy.lead.grade is Grade.A
    assert copy.assignment is not None and copy.assignment.accept_by == NOW + timedelta(minutes=5)
    assert copy.model_dump_json() == state.model_dump_json()


def test_changing_the_copy_leaves_the_state_as_it_was() -> None:
    state = full_state()
    before = state.model_dump_json()
    copy = state.copied()
    copy.seen.append("evt-new")
    copy.lead.reasons.append("visit +5")
    copy.tried_reps.append("rep-1")
    copy.consent_notes[0].reason = "changed"
    assert copy.assignment is not None and copy.next_touch is not None and copy.queued is not None
    copy.assignment.status = "expired"
    copy.next_touch.deferrals = 3
    copy.queued.score = 10.0
    copy.touch_log.clear()
    assert state.model_dump_json() == before
