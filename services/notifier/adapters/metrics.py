"""The notifier's own Prometheus series (names agreed in docs/contracts.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from leadpipe.runtime.metrics import LATENCY_BUCKETS

#: Capture to rep alert: the headline SLO is minutes, so buckets run from seconds to hours.
SLO_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0)


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.sends = Counter(
            "leadpipe_notifier_sends_total",
            "Notification requests ended, by channel and outcome (synthetic ones excluded)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.send_duration = Histogram(
            "leadpipe_notifier_send_duration_seconds",
            "Time a provider took to answer one send",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.retry_backlog = Gauge(
            "leadpipe_notifier_retry_backlog", "Requests waiting on the retry topic", registry=registry
        )
        self.provider_errors = Counter(
            "leadpipe_notifier_provider_errors_total",
            "Failed provider calls, by kind (timeout, connection, rate_limited, server_error, client_error, smtp_4xx, smtp_5xx)",
            ["channel", "kind"],
            registry=registry,
        )
        self.capture_to_rep_alert = Histogram(
            "leadpipe_capture_to_rep_alert_seconds",
            "Lead captured to rep alert sent (the headline SLO)",
            buckets=SLO_BUCKETS,
            registry=registry,
        )
        self.resent_after_crash = Counter(
            "leadpipe_notifier_resent_after_crash_total",
            "Sends repeated because an earlier delivery died mid-send (the one duplicate window)",
            ["channel"],
            registry=registry,
        )
        self.reconciled_after_crash = Counter(
            "leadpipe_notifier_reconciled_after_crash_total",
            "Interrupted sends the provider had accepted: recorded from its log, not sent again",
            ["channel"],
            registry=registry,
        )
        self.duplicates = Counter(
            "leadpipe_notifier_duplicate_requests_total",
            "Redelivered requests that were already finished (not sent again)",
            registry=registry,
        )
        self.suppressions = Counter(
            "leadpipe_notifier_suppressions_recorded_total",
            "Addresses put on the suppression list, by reason",
            ["reason"],
            registry=registry,
        )
        self.consent_refusals = Counter(
            "leadpipe_notifier_consent_refusals_total",
            "Marketing requests to a lead refused at send time: their consent did not cover the channel",
            ["channel"],
            registry=registry,
        )
        self.recipient_limited = Counter(
            "leadpipe_notifier_recipient_limited_total",
            "Requests deferred by a per-recipient limit, by scope (lead: the lead-facing cap; "
            "internal: the reps' and managers' safety limit)",
            ["scope"],
            registry=registry,
        )
        self.rebuilds = Counter(
            "leadpipe_notifier_rebuilds_total",
            "Times the Redis keyspace was found empty and rebuilt from the outcome and engagement topics",
            registry=registry,
        )
