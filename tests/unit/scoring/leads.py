"""Plain helpers to describe leads in tests (no fixtures): build captures and engagements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from services.scoring.adapters.reference_files import load_model, load_reference
from services.scoring.domain.identity import normalise_identifiers, resolve
from services.scoring.domain.lead import LeadState, apply_capture, apply_engagement, new_lead
from services.scoring.domain.scoring import Assessment, assess

T0 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
MODEL = load_model()
REF = load_reference()


def capture(
    *,
    email: str | None = "dana@example.com",
    phone: str | None = None,
    title: str | None = None,
    country: str | None = "US",
    need: str | None = None,
    budget: str | None = None,
    authority: str | None = None,
    timeline: str | None = None,
    seats: int | None = None,
    rating: str | None = None,
    at: datetime = T0,
    capture_id: str = "c-1",
    source_kind: str = "web_form",
    **extra: Any,
) -> LeadCaptured:
    return LeadCaptured.model_validate(
        {
            "capture_id": capture_id,
            "source_kind": source_kind,
            "captured_at": at,
            "identity": {"email": email, "phone": phone, **extra.pop("identity", {})},
            "person": {"job_title": title, "country": country, **extra.pop("person", {})},
            "qualification": {
                "need": need,
                "budget": budget,
                "authority": authority,
                "timeline": timeline,
                "seats": seats,
            },
            "booth_rating": rating,
            **extra,
        }
    )


def engagement(kind: str, *, at: datetime = T0, email: str = "dana@example.com", **extra: Any) -> LeadEngagement:
    return LeadEngagement.model_validate(
        {"engagement_id": f"e-{kind}-{at.isoformat()}", "kind": kind, "occurred_at": at, "identity": {"email": email}}
        | extra
    )


def lead(*events: LeadCaptured | LeadEngagement) -> LeadState:
    """The state of a single lead after the given events, in order."""
    state: LeadState | None = None
    for event in events:
        i = event.identity
        ids = normalise_identifiers(email=i.email, phone=i.phone, show_id=i.show_id, badge_id=i.badge_id, country="US")
        if state is None:
            state = new_lead(resolve(ids.strings(), {}, {}).lead_id, T0)
        if isinstance(event, LeadCaptured):
            state = apply_capture(state, f"evt-{event.capture_id}", event, ids)
        else:
            state = apply_engagement(state, f"evt-{event.engagement_id}", event, ids)
    assert state is not None
    return state


def scored(*events: LeadCaptured | LeadEngagement, now: datetime = T0) -> Assessment:
    return assess(lead(*events), REF, MODEL, now)


def fired(assessment: Assessment) -> set[str]:
    return {r.rule_id for r in assessment.reasons}


def days(n: float) -> timedelta:
    return timedelta(days=n)
