"""Nurture's metrics, on an explicit registry (synthetic leads never touch the business series)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from leadpipe.runtime.metrics import StageMetrics

ASSIGN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)


class NurtureMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.stage = StageMetrics("nurture", registry)
        self.leads = Gauge("leadpipe_nurture_leads", "Leads by lifecycle stage", ["stage"], registry=registry)
        self.transitions = Counter(
            "leadpipe_nurture_transitions_total", "Lifecycle transitions", ["from_stage", "to_stage"], registry=registry
        )
        self.illegal = Counter(
            "leadpipe_nurture_illegal_transitions_total", "Transitions rejected as illegal", registry=registry
        )
        self.scheduled = Counter(
            "leadpipe_nurture_touches_scheduled_total", "Touches put on a lead's schedule", registry=registry
        )
        self.sent = Counter(
            "leadpipe_nurture_touches_requested_total", "Notifications requested", ["audience"], registry=registry
        )
        self.cadence_not_started = Counter(
            "leadpipe_nurture_cadence_not_started_total",
            "Lead channels a cadence did not use, by reason (no marketing consent)",
            ["channel", "reason"],
            registry=registry,
        )
        self.deferred = Counter(
            "leadpipe_nurture_touches_deferred_total",
            "Touches moved later by the sending window or the frequency cap",
            registry=registry,
        )
        self.due = Gauge("leadpipe_nurture_touches_due", "Leads with a touch or timer due now", registry=registry)
        self.overdue = Gauge(
            "leadpipe_nurture_touches_overdue",
            "Leads whose touch or timer is more than a minute late",
            registry=registry,
        )
        self.sla_breaches = Counter(
            "leadpipe_nurture_sla_breaches_total", "Assignments not accepted in time", registry=registry
        )
        self.time_to_assignment = Histogram(
            "leadpipe_nurture_time_to_assignment_seconds",
            "From the lead.scored that made a lead sales-ready to its assignment",
            buckets=ASSIGN_BUCKETS,
            registry=registry,
        )
        self.rep_load = Gauge(
            "leadpipe_nurture_rep_load",
            "Assignments counted against a rep's capacity today",
            ["rep"],
            registry=registry,
        )
        self.unassigned = Counter(
            "leadpipe_nurture_unassigned_total", "Routing attempts that found no rep with capacity", registry=registry
        )
        self.overflow = Counter(
            "leadpipe_nurture_overflow_total",
            "Sales-ready leads no rep had room for, by team and what the team's policy did (queue, least_loaded)",
            ["team", "policy"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "leadpipe_nurture_overflow_queue_depth",
            "Leads waiting in a team's overflow queue for a rep with room",
            ["team"],
            registry=registry,
        )
        self.queue_oldest = Gauge(
            "leadpipe_nurture_overflow_queue_oldest_seconds",
            "How long the longest-waiting lead in a team's overflow queue has waited",
            ["team"],
            registry=registry,
        )
        self.conflicts = Counter(
            "leadpipe_nurture_state_conflicts_total", "Optimistic state writes retried", registry=registry
        )
        self.rebuilds = Counter(
            "leadpipe_nurture_rebuilds_total",
            "Times the Redis keyspace was found empty and rebuilt from the state topic",
            registry=registry,
        )
