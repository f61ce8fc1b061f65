"""The ingest service's Prometheus series (names agreed in docs/contracts.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from leadpipe.runtime.metrics import LATENCY_BUCKETS


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.requests = Counter(
            "leadpipe_http_requests_total", "HTTP requests by route", ["route", "method", "status"], registry=registry
        )
        self.duration = Histogram(
            "leadpipe_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.published = Counter(
            "leadpipe_ingest_events_published_total",
            "Events accepted for publishing (acked by the broker or spooled)",
            ["type", "source"],
            registry=registry,
        )
        self.rejected = Counter(
            "leadpipe_ingest_rejected_total", "Inputs not turned into events", ["reason"], registry=registry
        )
        self.spool_depth = Gauge("leadpipe_ingest_spool_depth", "Records waiting in the local spool", registry=registry)
        self.spool_oldest_age = Gauge(
            "leadpipe_ingest_spool_oldest_age_seconds", "Age of the oldest spooled record", registry=registry
        )
