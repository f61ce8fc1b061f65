"""How a lead's events fold into its read-model row.

The row is a pure function of the lead's events ordered by (time, event id): applying the
same set of events in any arrival order, once or twice, gives the same row. That is what makes
the projection idempotent and a rebuild from the topics identical to the live one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

#: Outcomes a rep logs that an engagement already carries, and its kind (the event nurture acts
#: on: a reply or a meeting stops the cadence and advances the stage, a purchase makes a customer;
#: scoring counts them too).
ENGAGEMENT_OUTCOMES: Mapping[str, str] = {
    "reached": "email_replied",
    "meeting_booked": "meeting_booked",
    "won": "purchased",
}
#: Verdicts no engagement carries: published as ``lead.outcome_logged`` (nurture disqualifies or
#: recycles the lead and stops the cadence).
VERDICTS = ("not_interested", "lost")
OUTCOMES = (*ENGAGEMENT_OUTCOMES, *VERDICTS)


#: Engagements that answer a lead's touches (nurture's ``ANSWERS``): the unanswered count restarts.
ANSWERS = frozenset({"email_replied", "meeting_booked", "email_clicked", "page_visit", "purchased"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One event as the console keeps it: enough to fold a lead's row and draw its timeline."""

    event_id: str
    type: str
    time: datetime
    lead_id: str | None
    summary: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeadRow:
    lead_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    country: str | None = None
    source_kind: str | None = None
    grade: str | None = None
    score: float | None = None
    reasons: tuple[str, ...] = ()
    core_account: bool = False
    stage: str = "captured"
    stage_reason: str | None = None
    team: str | None = None
    rep_id: str | None = None
    rep_name: str | None = None
    assignment_id: str | None = None
    assignment_status: str | None = None
    accept_by: datetime | None = None
    captured_at: datetime | None = None
    assigned_at: datetime | None = None
    alerted_at: datetime | None = None
    accepted_at: datetime | None = None
    last_contact_at: datetime | None = None
    last_outcome: str | None = None
    queued_at: datetime | None = None
    sla_breached: bool = False
    updated_at: datetime | None = None
    #: Lead-facing touches delivered since the lead last answered (from notification outcomes: an
    #: approximation of nurture's own count, which it keeps in its state, not in an event).
    unanswered_touches: int = 0
    #: When the lead's cadence next touches it, as of nurture's latest stage change or request
    #: (a touch held for the lead's sending window or the frequency cap may go out later).
    next_touch_at: datetime | None = None


def ordered(facts: Iterable[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.time, f.event_id))


def fold(lead_id: str, facts: Iterable[Fact]) -> LeadRow:
    """The row of one lead from all of its events (any order, duplicates ignored)."""
    seen: set[str] = set()
    row = LeadRow(lead_id=lead_id)
    in_order = ordered(facts)
    for fact in in_order:
        if fact.event_id in seen:
            continue
        seen.add(fact.event_id)
        row = apply(row, fact)
    # The latest event's time, set once here (``replace`` is most of the fold's cost).
    return replace(row, updated_at=in_order[-1].time) if in_order else row


def apply(row: LeadRow, fact: Fact) -> LeadRow:
    """One event applied to the row (``fold`` sets ``updated_at``)."""
    d, t = fact.data, fact.time
    if fact.type == "lead.captured":
        if row.captured_at is None or t < row.captured_at:
            row = replace(row, captured_at=t)
        return replace(row, source_kind=row.source_kind or d.get("source_kind"))
    if fact.type == "lead.scored":
        profile, capture = d.get("profile") or {}, d.get("capture") or {}
        reasons = tuple(
            f"{r['description']} ({r['points']:+g})"
            for r in sorted(d.get("reasons") or (), key=lambda r: -abs(r["points"]))
        )
        return replace(
            row,
            name=profile.get("full_name") or row.name,
            email=profile.get("email") or row.email,
            phone=profile.get("phone") or row.phone,
            company=profile.get("company") or row.company,
            country=profile.get("country") or row.country,
            source_kind=capture.get("source_kind") or row.source_kind,
            captured_at=_min(row.captured_at, _dt(capture.get("first_captured_at"))),
            grade=d.get("grade"),
            score=d.get("score"),
            reasons=reasons,
            core_account=bool(d.get("core_account")),
        )
    if fact.type == "lead.stage_changed":
        return replace(
            row, stage=d["to_stage"], stage_reason=d.get("reason"), next_touch_at=_dt(d.get("next_touch_at"))
        )
    if fact.type == "notification.requested":
        return replace(row, next_touch_at=_dt(d.get("next_touch_at")))
    if fact.type == "lead.assigned":
        return replace(
            row,
            rep_id=d["rep_id"],
            rep_name=d.get("rep_name"),
            team=d.get("team") or row.team,
            assignment_id=d["assignment_id"],
            assignment_status="pending",
            assigned_at=t,
            accept_by=_dt(d.get("accept_by")),
            alerted_at=None,
            accepted_at=None,
            queued_at=None,
        )
    if fact.type == "assignment.response":
        if d.get("assignment_id") != row.assignment_id or row.assignment_status != "pending":
            return row  # an answer to an earlier assignment, or a second answer: the first stands
        accepted = d.get("response") == "accepted"
        breached = row.accept_by is not None and t > row.accept_by
        return replace(
            row,
            assignment_status="accepted" if accepted else "declined",
            accepted_at=t if accepted else None,
            sla_breached=row.sla_breached or breached,
        )
    if fact.type == "notification.outcome":
        template = d.get("template") or ""
        if template == "manager_overflow":
            return replace(row, queued_at=row.queued_at or t)
        if template == "manager_sla_breach":
            return replace(row, sla_breached=True)
        if d.get("audience") == "rep" and d.get("status") == "sent" and d.get("assignment_id") == row.assignment_id:
            return replace(row, alerted_at=row.alerted_at or t)
        if d.get("audience") == "lead" and d.get("status") == "sent":
            return replace(row, last_contact_at=t, unanswered_touches=row.unanswered_touches + 1)
        return row
    if fact.type == "lead.outcome_logged":
        return replace(row, last_contact_at=t, last_outcome=d.get("outcome"))
    if fact.type == "lead.engagement":
        kind = d.get("kind")
        if kind in ANSWERS:
            row = replace(row, unanswered_touches=0)
        if d.get("provider") == "console":
            outcome = next((o for o, k in ENGAGEMENT_OUTCOMES.items() if k == kind), kind)
            return replace(row, last_contact_at=t, last_outcome=outcome)
        if kind in ("email_replied", "meeting_booked"):
            return replace(row, last_contact_at=t)
        return row
    return row


def sla_seconds_left(row: LeadRow, now: datetime) -> float | None:
    """Seconds until the rep must accept (negative: overdue); None once answered or unassigned."""
    if row.assignment_status != "pending" or row.accept_by is None:
        return None
    return (row.accept_by - now).total_seconds()


def work_order(row: LeadRow, now: datetime) -> tuple[int, float, int, str]:
    """What to do now first: pending answers by SLA countdown, then core accounts, better grades."""
    left = sla_seconds_left(row, now)
    return (
        0 if left is not None else 1,
        left if left is not None else 0.0,
        0 if row.core_account else 1,
        row.grade or "Z",
    )


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ranked = sorted(values)
    index = max(0, min(len(ranked) - 1, -(-len(ranked) * p // 100) - 1))
    return ranked[int(index)]


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)
