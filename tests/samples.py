"""One fully populated example of every v1 event, shared by tests and golden files."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import (
    AssignmentResponse,
    LeadAssigned,
    LeadCaptured,
    LeadEngagement,
    LeadScored,
    LeadStageChanged,
    NotificationOutcome,
    NotificationRequested,
)
from schemas.envelope import Envelope, new_event

T0 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
LEAD = "ld_0123456789abcdef"


def payloads() -> list[Any]:
    return [
        LeadCaptured.model_validate(
            {
                "capture_id": "form-demo-0001",
                "source_kind": "booth_scan",
                "captured_at": "2026-05-04T09:30:00Z",
                "identity": {
                    "email": "Dana.Director@Example.com",
                    "phone": "+1 415 555 0100",
                    "badge_id": "B-77",
                    "show_id": "saastr-2026",
                    "external_id": "crm-9",
                },
                "person": {
                    "first_name": "Dana",
                    "last_name": "Lee",
                    "full_name": "Dana Lee",
                    "job_title": "Director of Operations",
                    "company": "Example Corp",
                    "company_domain": "example.com",
                    "website": "https://example.com",
                    "country": "US",
                    "region": "CA",
                    "city": "San Francisco",
                    "postal_code": "94107",
                    "language": "en",
                    "timezone": "America/Los_Angeles",
                },
                "consent": {
                    "marketing": True,
                    "channels": ["email", "sms"],
                    "text_shown": "Send me product news.",
                    "given_at": "2026-05-04T09:30:00Z",
                    "ip": "203.0.113.7",
                    "user_agent": "Mozilla/5.0",
                },
                "context": {
                    "form_id": "demo-request",
                    "landing_page": "https://example.com/demo",
                    "referrer_url": "https://search.example/",
                    "utm_source": "google",
                    "utm_medium": "cpc",
                    "utm_campaign": "spring",
                    "show_id": "saastr-2026",
                    "show_name": "SaaStr 2026",
                    "show_ends_on": "2026-05-06",
                    "booth": "B12",
                    "device_id": "scanner-3",
                    "staff": "sam",
                    "referred_by": "ld_referrer",
                    "batch_id": "batch-1",
                },
                "qualification": {
                    "need": "replace spreadsheets",
                    "budget": "50k",
                    "authority": "decision maker",
                    "timeline": "this quarter",
                    "seats": 40,
                    "product_interest": ["pipeline"],
                    "other": {"crm": "none"},
                },
                "booth_rating": "hot",
                "notes": ["asked for pricing"],
                "tags": ["demo"],
            }
        ),
        LeadEngagement.model_validate(
            {
                "engagement_id": "esp-1",
                "kind": "email_bounced",
                "occurred_at": "2026-05-05T10:00:00Z",
                "identity": {"email": "dana.director@example.com"},
                "channel": "email",
                "provider": "postmark",
                "notification_id": "n-1",
                "bounce_type": "hard",
                "url": "https://example.com/x",
                "detail": "550 mailbox unknown",
            }
        ),
        LeadScored.model_validate(
            {
                "lead_id": LEAD,
                "scored_at": "2026-05-04T09:30:01Z",
                "model_version": "fit-2026.1",
                "fit_score": 62.5,
                "engagement_score": 10.0,
                "score": 72.5,
                "grade": "A",
                "qualification": {"need": "yes", "means": "yes", "authority": "yes", "urgency": "unknown"},
                "core_account": True,
                "reasons": [
                    {
                        "rule_id": "seniority.director",
                        "description": "Director-level title",
                        "points": 15.0,
                        "component": "fit",
                    }
                ],
                "profile": {
                    "email": "dana.director@example.com",
                    "phone": "+14155550100",
                    "full_name": "Dana Lee",
                    "job_title": "Director of Operations",
                    "role": "operations",
                    "seniority": "director",
                    "company": "Example Corp",
                    "company_domain": "example.com",
                    "industry": "software",
                    "employees": 500,
                    "country": "US",
                    "timezone": "America/Los_Angeles",
                    "language": "en",
                    "email_kind": "corporate",
                    "in_served_area": True,
                    "marketing_consent": True,
                },
                "capture": {
                    "source_kind": "web_form",
                    "first_captured_at": "2026-05-04T09:30:00Z",
                    "last_captured_at": "2026-05-04T09:30:00Z",
                    "form_id": "demo-request",
                    "show_id": "saastr-2026",
                    "show_ends_on": "2026-05-06",
                    "booth_rating": "hot",
                    "product_interest": ["pipeline"],
                },
                "trigger": {
                    "event_id": "evt-1",
                    "event_type": "dev.leadpipe.lead.engagement",
                    "engagement_kind": "email_replied",
                    "notification_id": "n-1",
                    "bounce_type": "soft",
                    "channel": "email",
                },
                "merged_lead_ids": ["ld_old"],
                "suppressed_channels": ["sms"],
                "complained": False,
                "invalid_addresses": ["old@example.com"],
            }
        ),
        LeadStageChanged.model_validate(
            {
                "lead_id": LEAD,
                "from_stage": "captured",
                "to_stage": "engaged",
                "reason": "grade A on web form",
                "changed_at": "2026-05-04T09:30:02Z",
                "trigger_event_id": "evt-2",
            }
        ),
        LeadAssigned.model_validate(
            {
                "assignment_id": "as-1",
                "lead_id": LEAD,
                "rep_id": "rep-ana",
                "rep_name": "Ana",
                "team": "west",
                "manager_id": "mgr-1",
                "rule": "territory",
                "attempt": 2,
                "previous_rep_id": "rep-bo",
                "reason": "territory US-West",
                "assigned_at": "2026-05-04T09:30:02Z",
                "accept_by": "2026-05-04T09:45:02Z",
            }
        ),
        AssignmentResponse.model_validate(
            {
                "assignment_id": "as-1",
                "lead_id": LEAD,
                "rep_id": "rep-ana",
                "response": "accepted",
                "responded_at": "2026-05-04T09:31:00Z",
                "note": "on it",
            }
        ),
        NotificationRequested.model_validate(
            {
                "notification_id": "n-1",
                "lead_id": LEAD,
                "audience": "rep",
                "channel": "email",
                "recipient": {
                    "address": "ana@sales.example",
                    "name": "Ana",
                    "rep_id": "rep-ana",
                    "timezone": "America/Los_Angeles",
                },
                "template": "rep_alert",
                "locale": "en",
                "variables": {"grade": "A", "reasons": ["Director-level title"]},
                "requested_at": "2026-05-04T09:30:02Z",
                "not_before": "2026-05-04T09:30:02Z",
                "expires_at": "2026-05-05T09:30:02Z",
                "priority": "high",
                "touch": {"playbook": "web-a", "playbook_version": "2026.1", "step": 0, "cadence": "hot"},
                "assignment_id": "as-1",
            }
        ),
        NotificationOutcome.model_validate(
            {
                "notification_id": "n-1",
                "lead_id": LEAD,
                "status": "sent",
                "channel": "email",
                "audience": "rep",
                "attempts": 1,
                "completed_at": "2026-05-04T09:30:03Z",
                "provider_response": "250 OK",
                "error": None,
                "template": "rep_alert",
                "assignment_id": "as-1",
            }
        ),
    ]


def events() -> list[Envelope[Any]]:
    return [
        new_event(
            p, source="/tests", subject=LEAD, id=f"golden-{p.EVENT_TYPE}-v{p.VERSION}", time=T0, correlationid="corr-1"
        )
        for p in payloads()
    ]
