"""When no rep has room: the team's queue (hottest first, the manager told at once) or its
least-loaded rep past capacity. Plain data in, decisions out (no Redis, no clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from schemas.base import Grade
from services.nurture.domain.engine import Nurture
from services.nurture.domain.errors import ConfigError
from services.nurture.domain.routing import (
    LeadFacts,
    Load,
    QueueEntry,
    least_loaded,
    overflow_team,
    parse_directory,
    queue_order,
    serve_next,
)
from tests.unit.nurture.builders import CONFIG, MONDAY_10_NY, directory, playbooks, response, route_first, scored

MINUTE = timedelta(minutes=1)


def full() -> dict[str, Load]:
    return {r.id: Load(used=r.daily_capacity) for r in directory().reps}


def team_directory(**amer: object) -> Nurture:
    data = yaml.safe_load((CONFIG / "sales_team.yaml").read_text())
    data["teams"] = [{"id": "amer", "manager": "mgr-amer", **amer}, {"id": "emea", "manager": "mgr-emea"}]
    return Nurture(playbooks(), parse_directory(data))


def queued_hot_lead(n: Nurture, lead_id: str = "ld_1", score: float = 60):
    d = n.on_scored(None, "ev1", scored(lead_id, grade="A"), MONDAY_10_NY)
    d.state.lead.score = score
    return n.assign(d, None, MONDAY_10_NY, None)


def entry(lead_id: str, grade: str, score: float, minutes_ago: int, exclude: tuple[str, ...] = ()) -> QueueEntry:
    return QueueEntry(lead_id, "amer", Grade(grade), score, MONDAY_10_NY - minutes_ago * MINUTE, exclude)


def test_a_hot_lead_waits_in_its_teams_queue_when_every_rep_is_full_and_the_manager_is_alerted_at_once():
    n = Nurture(playbooks(), directory())
    d = queued_hot_lead(n)
    assert d.state.queued is not None and d.state.queued.team == "amer" and d.state.queued.since == MONDAY_10_NY
    assert d.queued == ["amer"] and d.state.assignment is None and d.state.assign_retry_at is None
    (alert,) = [x for x in d.notifications if x.audience == "manager"]
    assert (alert.template, alert.channel, alert.address) == ("manager_overflow", "slack", "#sales-amer-escalations")
    assert alert.notification_id == "overflow:ld_1:1" and alert.priority == "high"
    assert alert.variables["lead"]["grade"] == "A" and alert.variables["lead"]["reasons"][0] == "Director-level title"
    assert alert.variables["team"] == "amer" and alert.variables["queued_at"] == MONDAY_10_NY.isoformat()
    assert n.queue_entry(d.state) == QueueEntry("ld_1", "amer", Grade.A, 60, MONDAY_10_NY, ())


def test_a_waiting_lead_is_not_alerted_again_when_a_later_attempt_finds_no_room_either():
    n = Nurture(playbooks(), directory())
    d = queued_hot_lead(n)
    retry = n.on_capacity(d.state, MONDAY_10_NY + MINUTE)
    again = n.assign(retry, None, MONDAY_10_NY + MINUTE, None)
    assert again.notifications == [] and again.queued == [] and again.state == d.state


def test_a_team_with_an_overflow_channel_alerts_the_channel_in_the_managers_language():
    data = yaml.safe_load((CONFIG / "sales_team.yaml").read_text())
    data["managers"][1]["language"] = "zh-CN"  # mgr-amer
    data["teams"][0]["overflow_alert"] = {"channel": "slack", "address": "#amer-overflow"}
    n = Nurture(playbooks(), parse_directory(data))
    (alert,) = queued_hot_lead(n).notifications[-1:]
    assert (alert.address, alert.recipient_name, alert.locale) == ("#amer-overflow", "amer overflow", "zh-CN")


def test_a_lead_belongs_to_the_team_of_the_rep_it_would_get_if_capacity_were_no_object():
    assert overflow_team(LeadFacts(country="FR"), directory()).id == "emea"  # type: ignore[union-attr]
    assert overflow_team(LeadFacts(country="CN", language="zh"), directory()).id == "apac"  # type: ignore[union-attr]
    everyone = [r.id for r in directory().reps]
    # Every rep has had it: it still waits somewhere visible (the team it first belonged to).
    assert overflow_team(LeadFacts(country="US"), directory(), exclude=everyone).id == "amer"  # type: ignore[union-attr]


def test_the_queue_is_served_best_grade_first_then_highest_score_then_longest_waiting():
    entries = [entry("b-old", "B", 55, 30), entry("a-new", "A", 70, 1), entry("a-old", "A", 70, 9),
               entry("a-hot", "A", 92, 0)]  # fmt: skip
    assert [e.lead_id for e in queue_order(entries)] == ["a-hot", "a-old", "a-new", "b-old"]


def test_no_queued_lead_is_routed_while_every_rep_is_full():
    assert serve_next([entry("x", "A", 80, 5)], directory(), full()) == []


def test_only_as_many_queued_leads_are_routed_as_reps_have_room_and_the_hottest_go_first():
    loads = full() | {"rep-ben": Load(used=18)}  # two places free, with Ben
    entries = [entry("cold", "B", 50, 60), entry("warm", "A", 75, 10), entry("hot", "A", 90, 1)]
    assert serve_next(entries, directory(), loads) == ["hot", "warm"]


def test_a_free_place_goes_to_the_next_lead_when_the_hottest_already_went_to_that_rep():
    loads = full() | {"rep-ben": Load(used=19)}
    entries = [entry("declined-by-ben", "A", 95, 1, exclude=("rep-ben",)), entry("next", "A", 70, 5)]
    assert serve_next(entries, directory(), loads) == ["next"]


def test_a_queued_lead_goes_to_the_rep_who_has_room_again_and_leaves_the_queue():
    n = Nurture(playbooks(), directory())
    d = queued_hot_lead(n)
    served = route_first(n, n.on_capacity(d.state, MONDAY_10_NY + MINUTE), MONDAY_10_NY + MINUTE,
                         used={r.id: r.daily_capacity for r in n.directory.reps if r.id != "rep-ben"})  # fmt: skip
    assert served.state.queued is None and n.queue_entry(served.state) is None and not served.state.wants_rep
    assert served.state.assignment is not None and served.state.assignment.rep_id == "rep-ben"
    assert [x.template for x in served.notifications] == ["rep_alert"]


def test_a_lead_that_is_not_waiting_is_not_routed_when_capacity_frees():
    n = Nurture(playbooks(), directory())
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    assert n.on_capacity(d.state, MONDAY_10_NY + MINUTE).route is None


def test_a_lead_that_heats_up_while_waiting_moves_up_the_queue():
    n = Nurture(playbooks(), directory())
    d = queued_hot_lead(n, score=61)
    hotter = scored(grade="A", kind="meeting_booked").model_copy(update={"score": 88.0})
    d = n.on_scored(d.state, "ev2", hotter, MONDAY_10_NY + MINUTE)
    assert d.state.queued is not None and d.state.queued.score == 88.0 and d.state.queued.since == MONDAY_10_NY


def test_a_lead_that_buys_while_it_waits_leaves_the_queue():
    n = Nurture(playbooks(), directory())
    d = queued_hot_lead(n)
    d = n.on_scored(d.state, "ev2", scored(grade="A", kind="purchased"), MONDAY_10_NY + MINUTE)
    assert d.state.queued is None and n.queue_entry(d.state) is None and d.route is None
    assert n.on_capacity(d.state, MONDAY_10_NY + 2 * MINUTE).route is None


def test_a_declined_lead_nobody_else_has_room_for_waits_in_the_queue_and_the_manager_hears():
    n = Nurture(playbooks(), directory())
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A"), MONDAY_10_NY), MONDAY_10_NY)
    declined = n.on_response(d.state, "ev2", response(d.state, "declined"), MONDAY_10_NY)
    d = n.assign(declined, None, MONDAY_10_NY, None)
    assert d.state.queued is not None and d.state.assignment is None
    assert [x.template for x in d.notifications] == ["manager_overflow"]
    assert n.queue_entry(d.state).exclude == (d.state.tried_reps[0],)  # type: ignore[union-attr]


def test_a_least_loaded_team_gives_the_lead_to_the_rep_with_the_smallest_share_of_capacity_used():
    n = team_directory(overflow="least_loaded")
    team = n.directory.team("amer")
    loads = {"rep-ana": Load(used=13), "rep-ben": Load(used=20)}  # ana 13/12 past, ben 20/20 exactly full
    assert [r.id for r in least_loaded(team, n.directory, loads)] == ["rep-ben", "rep-ana"]
    assert [r.id for r in least_loaded(team, n.directory, loads, exclude=["rep-ben"])] == ["rep-ana"]


def test_a_rep_with_no_capacity_at_all_is_off_and_gets_no_overflow_lead():
    data = yaml.safe_load((CONFIG / "sales_team.yaml").read_text())
    data["reps"][0]["daily_capacity"] = 0  # ana
    d = parse_directory(data)
    assert [r.id for r in least_loaded(d.team("amer"), d, {})] == ["rep-ben"]


def test_teams_without_configuration_queue_and_alert_their_reps_manager():
    data = yaml.safe_load((CONFIG / "sales_team.yaml").read_text())
    del data["teams"]
    n = Nurture(playbooks(), parse_directory(data))
    assert n.directory.team("amer").overflow == "queue"
    assert queued_hot_lead(n).notifications[-1].address == "#sales-amer-escalations"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"teams": [{"id": "amer", "overflow": "spill"}]}, "directory.teams[0].overflow"),
        ({"teams": [{"id": "amer", "manager": "ghost"}]}, "directory.teams[0].manager"),
        ({"teams": [{"id": "amer", "overflow_alert": {"channel": "fax", "address": "1"}}]},
         "directory.teams[0].overflow_alert.channel"),
        ({"teams": [{"overflow": "queue"}]}, "directory.teams[0].id"),
    ],
)  # fmt: skip
def test_a_bad_team_setting_is_refused_naming_the_field(change: dict[str, object], where: str):
    data = yaml.safe_load((CONFIG / "sales_team.yaml").read_text()) | change
    with pytest.raises(ConfigError) as err:
        parse_directory(data)
    assert err.value.where == where


def test_a_team_nobody_would_hear_about_when_it_is_full_is_refused():
    data = {"reps": [{"id": "solo", "team": "nightshift", "alert": {"channel": "email", "address": "s@x.test"}}]}
    with pytest.raises(ConfigError) as err:
        parse_directory(data)
    assert err.value.where == "directory.teams.nightshift" and "nobody to alert" in str(err.value)
