"""bench.prom_text: samples of a real /metrics page, by name, with their labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from bench.prom_text import samples
from leadpipe.runtime.metrics import StageMetrics


def test_a_counters_samples_come_with_their_labels_and_other_names_are_left_out():
    registry = CollectorRegistry()
    stage = StageMetrics("nurture", registry)
    stage.consumed.labels("nurture", "b0.notification.outcome.v1").inc(6)
    stage.consumed.labels("nurture", "b0.lead.scored.v1").inc(3)
    stage.published.labels("nurture", "b0.lead.assigned.v1").inc(3)
    found = sorted(
        (labels["topic"], v)
        for labels, v in samples(generate_latest(registry).decode(), "leadpipe_events_consumed_total")
    )
    assert found == [("b0.lead.scored.v1", 3.0), ("b0.notification.outcome.v1", 6.0)]
