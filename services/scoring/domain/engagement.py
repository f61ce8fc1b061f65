"""Engagement: what the lead does, worth points that halve every ``half_life_days``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

#: Engagements nurture must act on: scoring always emits for these.
ACTIONABLE = frozenset({"email_replied", "meeting_booked", "unsubscribed", "complained", "email_bounced", "purchased"})


@dataclass(frozen=True, slots=True)
class EngagementRecord:
    """One engagement in a lead's history."""

    event_id: str
    kind: str
    occurred_at: datetime
    channel: str


def decayed_points(points: float, age_days: float, half_life_days: float) -> float:
    """Points of one engagement ``age_days`` old (a future-dated one counts in full)."""
    return float(points * 0.5 ** (max(0.0, age_days) / half_life_days))


def engagement_score(
    history: Iterable[EngagementRecord], points: Mapping[str, float], half_life_days: float, now: datetime
) -> tuple[float, dict[str, float]]:
    """The decayed total and the contribution of each kind (for the explanation)."""
    by_kind: dict[str, float] = {}
    for record in history:
        base = points.get(record.kind, 0.0)
        if base == 0.0:
            continue
        age = (now - record.occurred_at).total_seconds() / 86400.0
        by_kind[record.kind] = by_kind.get(record.kind, 0.0) + decayed_points(base, age, half_life_days)
    return round(sum(by_kind.values()), 2), {k: round(v, 2) for k, v in by_kind.items()}
