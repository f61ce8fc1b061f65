"""The console's Prometheus metrics, on an explicit registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.projected = Counter(
            "console_events_projected_total", "Events stored in the read model", ["type"], registry=registry
        )
        self.duplicates = Counter(
            "console_events_duplicate_total", "Events skipped: already projected", registry=registry
        )
        self.undecodable = Counter(
            "console_events_undecodable_total", "Records skipped: not a valid event", ["topic"], registry=registry
        )
        self.synthetic = Counter(
            "console_events_synthetic_total", "Records skipped: the canary's synthetic traffic", registry=registry
        )
        self.lag = Gauge(
            "console_projection_lag_seconds", "Now minus the time of the last projected event", registry=registry
        )
        self.batch = Histogram("console_batch_seconds", "Time to project one consumed batch", registry=registry)
        self.restarts = Counter(
            "console_projector_restarts_total", "Times the projector failed and was restarted", registry=registry
        )
        self.published = Counter(
            "console_events_published_total", "Events the console published", ["type"], registry=registry
        )
