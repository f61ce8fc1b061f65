"""Scoring's own metrics, beside the shared ``StageMetrics``."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter

from leadpipe.runtime.metrics import StageMetrics


class ScoringMetrics:
    def __init__(self, registry: CollectorRegistry, service: str = "scoring"):
        self.registry = registry
        self.stage = StageMetrics(service, registry)
        self.grades = Counter(
            "leadpipe_scoring_grades_total",
            "Leads entering a grade (first grade or a change of grade); synthetic leads excluded",
            ["grade"],
            registry=registry,
        )
        self.merges = Counter("leadpipe_scoring_merges_total", "Known leads merged into another", registry=registry)
        self.duplicates = Counter(
            "leadpipe_scoring_duplicate_events_total",
            "Events skipped because their id was already counted for the lead",
            registry=registry,
        )
        self.conflicts = Counter(
            "leadpipe_scoring_batch_conflicts_total",
            "Batches re-run because another worker changed one of their leads",
            registry=registry,
        )
        # privacy hook: what erasure took, by why (a person's request, or the retention sweep)
        self.erased_leads = Counter(
            "leadpipe_scoring_erased_leads_total",
            "Lead profiles erased, by reason: request (the person asked) or retention (the sweep)",
            ["reason"],
            registry=registry,
        )
        self.rebuilds = Counter(
            "leadpipe_scoring_rebuilds_total",
            "Times the Redis keyspace was found without its built marker and rebuilt from the state topic",
            registry=registry,
        )


class MetricsObserver:
    """The handler's ``Observer`` port over ``ScoringMetrics``."""

    def __init__(self, metrics: ScoringMetrics):
        self.metrics = metrics
        self._grades: dict[str, Any] = {}

    def graded(self, grade: str) -> None:
        # Once per event: keep the labelled child (``labels()`` takes a lock and builds a tuple).
        child = self._grades.get(grade)
        if child is None:
            child = self._grades[grade] = self.metrics.grades.labels(grade)
        child.inc()

    def merged(self, count: int) -> None:
        self.metrics.merges.inc(count)

    def duplicate(self) -> None:
        self.metrics.duplicates.inc()
