"""The retention sweep: ``leadpipe scoring sweep`` (run it daily from a timer or a CronJob).

1. Every unconverted lead held longer than the limit (``domain.retention``) is erased through the
   ordinary path: ``person.erasure_requested.v1`` naming its lead id (requested by
   ``retention:unconverted``), which scoring, nurture and the notifier honour as for a person's
   own request; scoring destroys the data keys of every identifier the lead held, so its records
   on every topic become unreadable at once. The request names lead ids only: the person is
   forgotten, not put on the erased list (a later capture with consent is marketed to normally).
2. The data keys of erasure requests every service has answered are destroyed (the request's own
   copy of the identifiers on ``person.erasure_requested.v1``).
3. With ``--logs-dir``, log files older than the log limit (30 days) are deleted there.

What it purged is counted in ``leadpipe_privacy_retention_purged_total{what}``, written with
``--metrics-file`` in the Prometheus text format (node_exporter's textfile collector reads it),
and scoring's worker counts the leads it erased per reason (``leadpipe_scoring_erased_leads_total``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, write_to_textfile

from schemas.person_erasure_requested.v1 import PersonErasureRequested, erasure_request
from services.scoring.domain.lead import LeadState
from services.scoring.domain.retention import RetentionPolicy, is_expired

REQUESTED_BY = "retention:unconverted"
#: Lead ids per erasure request (the request schema's limit).
PER_REQUEST = 100
DEFAULT_LOG_DAYS = 30.0


@dataclass
class SweepReport:
    leads_seen: int = 0
    expired: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    request_keys_destroyed: int = 0
    log_files_deleted: int = 0


class SweepMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.purged = Counter(
            "leadpipe_privacy_retention_purged_total",
            "What a retention sweep purged: expired unconverted leads (erasure requested), "
            "data keys of answered erasure requests, log files",
            ["what"],
            registry=registry,
        )


async def expired_leads(
    leads: AsyncIterator[list[LeadState]], policy: RetentionPolicy, now: datetime
) -> tuple[int, list[str]]:
    seen, out = 0, []
    async for chunk in leads:
        seen += len(chunk)
        out += [s.lead_id for s in chunk if is_expired(s, now, policy)]
    return seen, sorted(out)


def erasure_requests(secret: str, lead_ids: list[str], now: datetime) -> list[PersonErasureRequested]:
    return [
        erasure_request(
            secret,
            request_id=f"retention-{uuid.uuid4()}",
            requested_at=now,
            requested_by=REQUESTED_BY,
            lead_ids=lead_ids[i : i + PER_REQUEST],
        )
        for i in range(0, len(lead_ids), PER_REQUEST)
    ]


def prune_logs(logs_dir: Path, days: float, now_s: float | None = None) -> int:
    """Deletes the files under ``logs_dir`` (recursively) last written more than ``days`` ago."""
    cutoff = (now_s if now_s is not None else time.time()) - days * 86400
    n = 0
    for path in logs_dir.rglob("*"):
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink()
            n += 1
    return n


async def sweep(
    *,
    leads: AsyncIterator[list[LeadState]],
    policy: RetentionPolicy,
    secret: str,
    publish: Callable[[list[PersonErasureRequested]], Awaitable[None]],
    forget_answered: Callable[[], Awaitable[int]],
    metrics: SweepMetrics,
    now: datetime | None = None,
    logs_dir: Path | None = None,
    log_days: float = DEFAULT_LOG_DAYS,
    dry_run: bool = False,
) -> SweepReport:
    now = now or datetime.now(UTC)
    report = SweepReport()
    report.leads_seen, report.expired = await expired_leads(leads, policy, now)
    if dry_run:
        return report
    requests = erasure_requests(secret, report.expired, now)
    if requests:
        await publish(requests)
    report.requests = [r.request_id for r in requests]
    metrics.purged.labels("unconverted_lead").inc(len(report.expired))
    report.request_keys_destroyed = await forget_answered()
    metrics.purged.labels("erasure_request_key").inc(report.request_keys_destroyed)
    if logs_dir is not None:
        report.log_files_deleted = prune_logs(logs_dir, log_days)
        metrics.purged.labels("log_file").inc(report.log_files_deleted)
    return report


def write_metrics(metrics: SweepMetrics, path: Path) -> None:
    write_to_textfile(str(path), metrics.registry)
