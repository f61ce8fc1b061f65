"""Records written per lead from two readings of the topics' end offsets."""

from __future__ import annotations

from bench.pipeline_bench import records_per_lead


def test_each_topic_written_to_is_counted_per_lead_with_the_total() -> None:
    before = {"lead.captured.v1": 100, "lead.scored.v1": 100, "nurture.state.v1": 40}
    after = {"lead.captured.v1": 300, "lead.scored.v1": 300, "nurture.state.v1": 40, "lead.assigned.v1": 150}
    written = records_per_lead(before, after, leads=200)
    assert written == {
        "leads": 200,
        "per_topic": {"lead.assigned.v1": 0.75, "lead.captured.v1": 1.0, "lead.scored.v1": 1.0},
        "total": 2.75,
    }


def test_a_phase_that_completed_no_lead_has_no_rate() -> None:
    written = records_per_lead({"a": 1}, {"a": 5}, leads=0)
    assert written == {"leads": 0, "per_topic": {}, "total": None}
