"""Storage limitation (GDPR Art. 5(1)(e)): when a lead that never bought has been kept long enough.

A lead is *unconverted* while it has not purchased. Its last activity is the latest of its
creation, its last capture and its last engagement (an open, a click, a reply, a visit): a person
who keeps engaging keeps their lead. An unconverted lead whose last activity is older than the
limit (24 months by default) is erased through the ordinary erasure path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.scoring.domain.lead import LeadState

DEFAULT_UNCONVERTED_DAYS = 730.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    unconverted_lead_days: float = DEFAULT_UNCONVERTED_DAYS

    def __post_init__(self) -> None:
        if self.unconverted_lead_days < 0:
            raise ValueError(f"unconverted_lead_days: must be 0 or more, got {self.unconverted_lead_days}")

    @property
    def unconverted_lead_limit(self) -> timedelta:
        return timedelta(days=self.unconverted_lead_days)


def last_activity(state: LeadState) -> datetime:
    times = [state.created_at, *(t for t in (state.last_captured_at,) if t)]
    times += [e.occurred_at for e in state.engagements]
    return max(times)


def is_expired(state: LeadState, now: datetime, policy: RetentionPolicy) -> bool:
    """True for an unconverted lead whose last activity is older than the policy allows."""
    if state.purchased:
        return False
    return now - last_activity(state) > policy.unconverted_lead_limit
