"""The pipeline bench's reading of the workers' records per batch (their /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from bench.pipeline_bench import batch_totals
from leadpipe.runtime.metrics import StageMetrics


def test_batches_and_records_are_read_per_service_from_a_real_metrics_page():
    registry = CollectorRegistry()
    nurture = StageMetrics("nurture", registry)
    for size in (1, 3, 12):
        nurture.batch_records.labels("nurture").observe(size)
    nurture.consumed.labels("nurture", "lead.scored.v1").inc(16)  # not a batch count
    assert batch_totals(generate_latest(registry).decode()) == {"nurture": (3.0, 16.0)}


def test_a_page_without_batches_reads_as_no_service():
    registry = CollectorRegistry()
    StageMetrics("scoring", registry).consumed.labels("scoring", "lead.captured.v1").inc()
    assert batch_totals(generate_latest(registry).decode()) == {}
