from __future__ import annotations

import pytest

from schemas.lead_scored.v1 import Trigger
from services.scoring.domain.scoring import grade_for, scored_event
from tests.unit.scoring.leads import MODEL, T0, capture, days, engagement, fired, lead, scored


def test_a_director_at_a_500_person_company_in_the_served_area_with_an_urgent_need_grades_a():
    result = scored(capture(title="Director of Operations", need="replace spreadsheets", timeline="this quarter"))
    assert result.profile.employees == 500 and result.profile.in_served_area is True
    assert result.grade == "A"


def test_the_same_director_with_no_stated_need_grades_b():
    result = scored(capture(title="Director of Operations"))
    assert result.grade == "B"


def test_a_student_on_free_mail_grades_d():
    result = scored(capture(email="kid@gmail.com", title="Student"))
    assert result.grade == "D"
    assert {"negative.student", "negative.free_mail"} <= fired(result)


def test_a_competitor_scores_no_fit_however_senior():
    result = scored(capture(email="boss@rivalsoft.com", title="CEO", need="curious", timeline="now"))
    assert "negative.competitor" in fired(result)
    assert result.grade in ("C", "D")


def test_a_lead_outside_the_served_area_loses_points():
    inside = scored(capture(title="VP Sales", country="DE"))
    outside = scored(capture(title="VP Sales", country="BR"))
    assert "negative.outside_area" in fired(outside) and "region.served" in fired(inside)
    assert outside.fit < inside.fit


def test_a_disposable_address_is_a_strong_negative_signal():
    result = scored(capture(email="x@mailinator.com"))
    assert result.profile.email_kind == "disposable"
    assert "negative.disposable_mail" in fired(result)


def test_a_hot_booth_rating_adds_points_and_a_cold_one_takes_them_away():
    hot = scored(capture(rating="hot", source_kind="booth_scan"))
    cold = scored(capture(rating="cold", source_kind="booth_scan"))
    assert hot.fit - cold.fit == 25


def test_every_points_in_the_explanation_add_up_to_the_score():
    result = scored(capture(title="Head of IT", seats=40), engagement("email_clicked"), now=T0 + days(1))
    fit = sum(r.points for r in result.reasons if r.component == "fit")
    eng = sum(r.points for r in result.reasons if r.component == "engagement")
    assert round(fit, 2) == result.fit and round(eng, 2) == result.engagement
    assert result.score == round(result.fit + result.engagement, 2)


def test_rule_points_are_value_times_weight():
    rule = next(r for r in MODEL.rules if r.id == "seniority.director")
    assert rule.points == rule.value * rule.weight == 15


def test_grades_follow_the_bands():
    assert [grade_for(s, MODEL) for s in (70, 69.9, 45, 20, 19.99, 0)] == ["A", "B", "B", "C", "D", "D"]


def test_a_big_company_with_a_good_fit_is_a_core_account():
    result = scored(capture(email="cto@university.edu", title="CTO", need="campus-wide rollout", country="US"))
    assert result.core_account


def test_a_small_buyer_is_not_a_core_account():
    assert not scored(capture(title="Director", need="yes", timeline="now")).core_account


def test_buying_at_scale_makes_a_good_fit_a_core_account():
    assert scored(capture(title="Director", need="a team tool", seats=60)).core_account


def test_the_scored_event_names_the_model_version_and_the_trigger():
    state = lead(capture(title="VP Sales"))
    result = scored(capture(title="VP Sales"))
    event = scored_event(state, result, Trigger(event_id="evt-9", event_type="dev.leadpipe.lead.captured"), T0)
    assert event.model_version == "fit-2026.1" and event.trigger.event_id == "evt-9"
    assert {r.rule_id for r in event.reasons} == fired(result)


def test_a_lead_known_only_from_engagements_cannot_be_published_yet():
    state = lead(engagement("email_opened"))
    result = scored(engagement("email_opened"))
    with pytest.raises(ValueError, match="not been captured"):
        scored_event(state, result, Trigger(event_id="e", event_type="t"), T0)
