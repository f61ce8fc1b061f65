from datetime import UTC, datetime, timedelta

import pytest

from schemas.base import BoothRating, Grade, SourceKind, Stage
from services.nurture.domain.errors import ConfigError
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.routing import LeadFacts, Load, parse_directory, rank
from tests.unit.nurture.builders import directory, playbooks

T0 = datetime(2026, 5, 4, 14, tzinfo=UTC)


def test_a_web_grade_a_lead_gets_the_immediate_reply_playbook_with_a_rep_at_once():
    pb = playbooks().choose(Grade.A, SourceKind.WEB_FORM, None, Stage.CAPTURED)
    assert pb is not None and pb.assign == "immediate"
    first = pb.touch(0)
    assert first is not None and first.template == "lead_reply" and first.day == 0 and not first.respect_window


def test_a_hot_booth_lead_gets_a_call_task_playbook():
    pb = playbooks().choose(Grade.B, SourceKind.BOOTH_SCAN, BoothRating.HOT, Stage.CAPTURED)
    assert pb is not None and pb.id == "booth_hot" and pb.assign == "call_task"


def test_grade_b_sequence_runs_day_0_3_7_then_weekly():
    pb = playbooks().choose(Grade.B, SourceKind.WEB_FORM, None, Stage.CAPTURED)
    assert pb is not None
    days = [(pb.due_at(i, T0) - T0) / timedelta(days=1) for i in range(6)]  # type: ignore[operator]
    assert days == [0, 3, 7, 14, 21, 28]


def test_grade_c_is_touched_monthly():
    pb = playbooks().choose(Grade.C, SourceKind.WEB_FORM, None, Stage.CAPTURED)
    assert pb is not None
    assert [(pb.due_at(i, T0) - T0).days for i in range(3)] == [0, 30, 60]  # type: ignore[operator]


def test_onboarding_ends_after_its_last_step():
    pb = playbooks().get("new_customer")
    assert pb is not None and pb.touch(4) is not None and pb.touch(5) is None


def test_a_lead_no_playbook_names_still_gets_a_touch_every_week():
    pb = playbooks().choose(Grade.B, SourceKind.CUSTOMER_IMPORT, None, Stage.RECYCLED)
    assert pb is not None  # grade_b matches; the default is the catch-all
    default = playbooks().get("default")
    assert default is not None and default.match.fits(Grade.D, SourceKind.API, None, Stage.ENGAGED)
    assert (default.due_at(1, T0) - T0).days == 7  # type: ignore[operator]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"template": "rep_alert"}, "playbooks[0].steps[0].template"),
        ({"day": -1}, "playbooks[0].steps[0].day"),
    ],
)
def test_an_invalid_playbook_step_is_rejected_naming_the_field(patch, field):
    doc = {"version": "1", "onboarding_playbook": "x",
           "playbooks": [{"id": "x", "steps": [{"day": 0, "template": "weekly_checkin"} | patch]}]}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        parse_playbooks(doc)
    assert err.value.where == field


def test_a_playbook_file_without_version_is_rejected():
    with pytest.raises(ConfigError, match=r"playbooks.version: missing"):
        parse_playbooks({"playbooks": [{"id": "x"}]})


def test_an_unknown_grade_in_a_match_is_rejected():
    with pytest.raises(ConfigError, match=r"match.grades: unknown value 'Z'"):
        parse_playbooks({"version": "1", "playbooks": [{"id": "new_customer", "match": {"grades": ["Z"]}}]})


def test_a_company_already_owned_goes_to_its_owner_first():
    ranked = rank(LeadFacts(country="DE", company_domain="example.com"), directory(), {})
    assert ranked[0].rep.id == "rep-ana" and ranked[0].rule == "account_owner"


def test_territory_comes_before_rotation():
    ranked = rank(LeadFacts(country="FR", language="en"), directory(), {})
    assert ranked[0].rep.id == "rep-chloe" and ranked[0].rule == "territory"


def test_language_narrows_a_territory_shared_by_several_reps():
    ranked = rank(LeadFacts(country="US", language="pt"), directory(), {})
    assert [c.rep.id for c in ranked] == ["rep-ana"]


def test_language_alone_routes_when_no_territory_matches():
    ranked = rank(LeadFacts(country="JP", language="zh-TW"), directory(), {})
    assert ranked[0].rep.id == "rep-wei" and ranked[0].rule == "language"


def test_rotation_prefers_the_rep_with_most_remaining_capacity():
    loads = {"rep-ben": Load(used=15)}  # ben 20-15=5 left, ana 12 left
    ranked = rank(LeadFacts(country="US", language="en"), directory(), loads)
    assert [c.rep.id for c in ranked] == ["rep-ana", "rep-ben"]
    ranked = rank(LeadFacts(country="US", language="en"), directory(), {"rep-ana": Load(used=10)})
    assert ranked[0].rep.id == "rep-ben"


def test_equal_capacity_rotates_to_the_rep_assigned_least_recently():
    loads = {"rep-ana": Load(used=0, last_assigned_at=5.0), "rep-ben": Load(used=8, last_assigned_at=1.0)}
    ranked = rank(LeadFacts(country="US", language="en"), directory(), loads)  # 12 left each
    assert ranked[0].rep.id == "rep-ben"


def test_core_accounts_go_to_senior_reps():
    ranked = rank(LeadFacts(country="US", language="en", core_account=True), directory(), {})
    assert [c.rep.id for c in ranked] == ["rep-ana"] and ranked[0].rule == "core_account"


def test_a_rep_at_capacity_or_already_tried_is_never_chosen():
    loads = {"rep-ana": Load(used=12)}
    ranked = rank(LeadFacts(country="US", language="en"), directory(), loads, exclude=["rep-ben"])
    assert {c.rep.id for c in ranked} == {"rep-chloe", "rep-wei"}
    full = {r.id: Load(used=r.daily_capacity) for r in directory().reps}
    assert rank(LeadFacts(country="US"), directory(), full) == []


def test_synthetic_leads_are_routed_without_looking_at_capacity():
    full = {r.id: Load(used=r.daily_capacity) for r in directory().reps}
    assert rank(LeadFacts(country="US"), directory(), full, ignore_capacity=True)


@pytest.mark.parametrize(
    ("rep", "field"),
    [
        ({"id": "r", "alert": {"channel": "pigeon", "address": "x"}}, "directory.reps[0].alert.channel"),
        ({"id": "r", "alert": {"channel": "email", "address": "x"}, "daily_capacity": -1},
         "directory.reps[0].daily_capacity"),
        ({"id": "r", "alert": {"channel": "email", "address": "x"}, "timezone": "Nowhere/City"},
         "directory.reps[0].timezone"),
        ({"id": "r", "alert": {"channel": "email", "address": "x"}, "manager": "ghost"}, "directory.reps[0].manager"),
        ({"id": "r", "alert": {"channel": "email", "address": "x"}, "working_hours": {"start": "18:00", "end": "09:00"}},
         "directory.reps[0].working_hours.end"),
    ],
)  # fmt: skip
def test_an_invalid_directory_entry_is_rejected_naming_the_field(rep, field):
    with pytest.raises(ConfigError) as err:
        parse_directory({"reps": [rep]})
    assert err.value.where == field


def test_the_sla_clock_runs_in_the_reps_working_hours():
    ben = directory().rep("rep-ben")
    assert ben is not None
    friday_1755_la = datetime(2026, 5, 9, 0, 55, tzinfo=UTC)
    assert ben.accept_by(friday_1755_la, timedelta(minutes=15)) == datetime(2026, 5, 11, 16, 10, tzinfo=UTC)
