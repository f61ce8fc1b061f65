from __future__ import annotations

from services.scoring.domain.engagement import decayed_points
from tests.unit.scoring.leads import T0, capture, days, engagement, lead, scored


def test_engagement_points_halve_every_thirty_days_by_default():
    assert decayed_points(20, 30, 30) == 10
    assert decayed_points(20, 60, 30) == 5


def test_a_reply_lifts_the_score_and_fades_when_the_lead_goes_quiet():
    fresh = scored(capture(), engagement("email_replied"), now=T0)
    month_later = scored(capture(), engagement("email_replied"), now=T0 + days(30))
    assert fresh.engagement == 15 and month_later.engagement == 7.5


def test_an_unsubscribe_suppresses_the_channel_and_is_carried_forward():
    state = lead(capture(), engagement("unsubscribed"), engagement("email_opened", at=T0 + days(1)))
    assert state.suppressed_channels == ("email",)


def test_a_complaint_is_remembered_and_suppresses_the_channel():
    state = lead(capture(), engagement("complained"))
    assert state.complained and state.suppressed_channels == ("email",)


def test_a_hard_bounce_marks_the_address_invalid_but_a_soft_one_does_not():
    hard = lead(capture(), engagement("email_bounced", bounce_type="hard"))
    soft = lead(capture(), engagement("email_bounced", bounce_type="soft"))
    assert hard.invalid_addresses == ("dana@example.com",) and soft.invalid_addresses == ()


def test_a_purchase_marks_a_repeat_customer():
    result = scored(capture(title="Director"), engagement("purchased"))
    assert "customer.repeat" in {r.rule_id for r in result.reasons}
