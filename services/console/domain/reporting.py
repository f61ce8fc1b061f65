"""What a manager watches: the queue, the funnel, speed-to-lead per rep, SLA breaches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.console.domain.projection import LeadRow, percentile


@dataclass(frozen=True, slots=True)
class Speed:
    rep_id: str
    leads: int
    to_alert_p50: float | None
    to_alert_p90: float | None
    to_accept_p50: float | None
    to_accept_p90: float | None


def queue(leads: Iterable[LeadRow]) -> list[LeadRow]:
    """Leads waiting for a rep: overflowed or declined and not (re)assigned; hottest first."""
    waiting = [
        lead
        for lead in leads
        if lead.assignment_status in (None, "declined", "expired") and (lead.queued_at or lead.assignment_status)
    ]
    return sorted(waiting, key=lambda r: (0 if r.core_account else 1, -(r.score or 0.0), r.lead_id))


def funnel(leads: Iterable[LeadRow]) -> dict[str, Counter[str]]:
    by: dict[str, Counter[str]] = {"stage": Counter(), "source": Counter(), "grade": Counter(), "week": Counter()}
    for lead in leads:
        by["stage"][lead.stage] += 1
        by["source"][lead.source_kind or "unknown"] += 1
        by["grade"][lead.grade or "-"] += 1
        if lead.captured_at is not None:
            year, week, _ = lead.captured_at.isocalendar()
            by["week"][f"{year}-W{week:02d}"] += 1
    return by


def speed_to_lead(leads: Iterable[LeadRow]) -> list[Speed]:
    """Per rep: seconds from capture to the rep's alert and from capture to acceptance."""
    alerts: dict[str, list[float]] = {}
    accepts: dict[str, list[float]] = {}
    counts: Counter[str] = Counter()
    for lead in leads:
        if lead.rep_id is None or lead.captured_at is None:
            continue
        counts[lead.rep_id] += 1
        if lead.alerted_at is not None:
            alerts.setdefault(lead.rep_id, []).append((lead.alerted_at - lead.captured_at).total_seconds())
        if lead.accepted_at is not None:
            accepts.setdefault(lead.rep_id, []).append((lead.accepted_at - lead.captured_at).total_seconds())
    return [
        Speed(
            rep,
            counts[rep],
            percentile(alerts.get(rep, []), 50),
            percentile(alerts.get(rep, []), 90),
            percentile(accepts.get(rep, []), 50),
            percentile(accepts.get(rep, []), 90),
        )
        for rep in sorted(counts)
    ]


def breaches(leads: Iterable[LeadRow], now: datetime) -> list[LeadRow]:
    """Assignments answered late, reported by nurture as breached, or still unanswered past due."""
    late = [
        lead
        for lead in leads
        if lead.sla_breached
        or (lead.assignment_status == "pending" and lead.accept_by is not None and lead.accept_by < now)
    ]
    return sorted(late, key=lambda r: (r.rep_id or "", r.lead_id))


#: Stages in which nurture is still working a lead (give-up applies only there).
ACTIVE = frozenset({"captured", "engaged", "sales_qualified", "opportunity"})


def about_to_give_up(leads: Iterable[LeadRow], give_up_after: int, warn_within: int = 2) -> list[LeadRow]:
    """Active leads within ``warn_within`` unanswered touches of being given up (recycled)."""
    near = [lead for lead in leads if lead.stage in ACTIVE and lead.unanswered_touches >= give_up_after - warn_within]
    return sorted(near, key=lambda r: (-r.unanswered_touches, r.lead_id))
