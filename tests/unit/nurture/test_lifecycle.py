import itertools
from datetime import UTC, datetime

import pytest

from schemas.base import Stage as S
from services.nurture.domain import lifecycle
from services.nurture.domain.errors import IllegalTransition

NOW = datetime(2026, 5, 4, tzinfo=UTC)


def test_a_new_lead_can_only_enter_the_funnel_as_captured():
    assert lifecycle.move(None, S.CAPTURED, "first scored", NOW).to_stage is S.CAPTURED
    with pytest.raises(IllegalTransition):
        lifecycle.move(None, S.ENGAGED, "skipping capture", NOW)


def test_the_funnel_runs_from_captured_to_loyal_customer():
    path = [S.CAPTURED, S.ENGAGED, S.SALES_QUALIFIED, S.OPPORTUNITY, S.NEW_CUSTOMER, S.REPEAT_CUSTOMER,
            S.LOYAL_CUSTOMER]  # fmt: skip
    for a, b in itertools.pairwise(path):
        assert lifecycle.move(a, b, "next", NOW).from_stage is a


def test_a_captured_lead_cannot_jump_to_opportunity_or_loyal():
    for target in (S.OPPORTUNITY, S.REPEAT_CUSTOMER, S.LOYAL_CUSTOMER):
        with pytest.raises(IllegalTransition) as err:
            lifecycle.move(S.CAPTURED, target, "too fast", NOW)
        assert err.value.to_stage == target and "captured" in str(err.value)


def test_a_new_customer_cannot_go_back_to_being_a_marketing_lead_except_through_recycled():
    assert not lifecycle.can_move(S.NEW_CUSTOMER, S.ENGAGED)
    assert lifecycle.can_move(S.NEW_CUSTOMER, S.RECYCLED)
    assert lifecycle.can_move(S.RECYCLED, S.ENGAGED)


def test_disqualified_and_recycled_leads_have_a_way_back():
    assert lifecycle.can_move(S.DISQUALIFIED, S.ENGAGED)
    assert lifecycle.can_move(S.RECYCLED, S.SALES_QUALIFIED)
    assert not lifecycle.can_move(S.DISQUALIFIED, S.OPPORTUNITY)


def test_every_stage_has_an_exit_and_none_leads_to_itself():
    for stage, targets in lifecycle.ALLOWED.items():
        assert targets and stage not in targets
