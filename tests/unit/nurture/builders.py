"""Plain builders for nurture domain tests (no fixtures: each test reads as its own story)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.lead_scored.v1 import LeadScored
from services.nurture.domain.engine import Decision, Nurture
from services.nurture.domain.playbooks import PlaybookSet, parse_playbooks
from services.nurture.domain.routing import Directory, parse_directory
from services.nurture.domain.state import LeadState

CONFIG = Path(__file__).resolve().parents[3] / "services" / "nurture" / "config"
# Monday 4 May 2026, 10:00 in New York (14:00 UTC): inside every window used here.
MONDAY_10_NY = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)


def playbooks(**policy: Any) -> PlaybookSet:
    data = yaml.safe_load((CONFIG / "playbooks.yaml").read_text())
    data["policy"] |= policy
    return parse_playbooks(data)


def directory() -> Directory:
    return parse_directory(yaml.safe_load((CONFIG / "sales_team.yaml").read_text()))


def engine(**policy: Any) -> Nurture:
    return Nurture(playbooks(**policy), directory())


def scored(
    lead_id: str = "ld_1",
    *,
    grade: str = "B",
    source: str = "web_form",
    kind: str | None = None,
    channel: str | None = None,
    bounce: str | None = None,
    rating: str | None = None,
    show_ends_on: str | None = None,
    country: str = "US",
    tz: str = "America/New_York",
    phone: str | None = None,
    core: bool = False,
    domain: str = "acme.io",
    consent: tuple[str, ...] | None = ("email", "sms"),
    trigger_id: str | None = None,
) -> LeadScored:
    """A scored lead; ``consent``: the channels it consented to marketing on (None: an event
    written before lead.scored carried consent); ``trigger_id``: the event that caused it (a new
    one for each call unless given)."""
    return LeadScored.model_validate(
        {
            "lead_id": lead_id,
            "scored_at": MONDAY_10_NY,
            "model_version": "m1",
            "fit_score": 50,
            "engagement_score": 10,
            "score": 60,
            "grade": grade,
            "core_account": core,
            "reasons": [
                {"rule_id": "r1", "description": "Director-level title", "points": 15, "component": "fit"},
                {"rule_id": "r2", "description": "Corporate email", "points": 5, "component": "fit"},
            ],
            "profile": {
                "email": f"{lead_id}@{domain}",
                "phone": phone,
                "full_name": "Dana Lee",
                "company": "Acme",
                "company_domain": domain,
                "country": country,
                "timezone": tz,
                "language": "en",
            },
            "capture": {
                "source_kind": source,
                "first_captured_at": MONDAY_10_NY,
                "last_captured_at": MONDAY_10_NY,
                "booth_rating": rating,
                "show_ends_on": show_ends_on,
                "show_id": "saastr-2026" if source == "booth_scan" else None,
            },
            "consent": None
            if consent is None
            else {
                "channels": list(consent),
                "given_at": MONDAY_10_NY,
                "source_kind": source,
                "capture_id": f"cap-{lead_id}",
            },
            "trigger": {
                "event_id": trigger_id or f"e-{uuid.uuid4().hex[:12]}",
                "event_type": "lead.engagement" if kind else "lead.captured",
                "engagement_kind": kind,
                "channel": channel,
                "bounce_type": bounce,
            },
        }
    )


def response(state: LeadState, answer: str) -> AssignmentResponse:
    assert state.assignment is not None
    return AssignmentResponse(
        assignment_id=state.assignment.assignment_id,
        lead_id=state.lead_id,
        rep_id=state.assignment.rep_id,
        response=answer,  # type: ignore[arg-type]
        responded_at=MONDAY_10_NY,
    )


def route_first(nurture: Nurture, d: Decision, now: datetime, used: dict[str, int] | None = None) -> Decision:
    """Completes a routing request with the first ranked rep (what the adapter does after reserving)."""
    from services.nurture.domain.routing import Load, rank

    assert d.route is not None
    loads = {k: Load(used=v) for k, v in (used or {}).items()}
    ranked = rank(nurture.lead_facts(d.state), nurture.directory, loads, exclude=d.route.exclude)
    pick = ranked[0] if ranked else None
    return nurture.assign(d, pick, now, pick.rep.local_day(now) if pick else None)
