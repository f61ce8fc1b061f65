""" "On what basis did we email this person on this date", answered from events alone."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from leadpipe.ops.consent import TRANSACTIONAL, messages_sent
from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def ev(data: Any) -> Envelope[Any]:
    return new_event(data, source="/tests", subject=getattr(data, "lead_id", "k"), id=str(uuid.uuid4()))


def capture(email: str, *, ticked: bool = True) -> Envelope[Any]:
    return ev(LeadCaptured.model_validate({
        "capture_id": f"cap-{email}", "source_kind": "web_form", "captured_at": T0,
        "identity": {"email": email}, "context": {"form_id": "demo"},
        "consent": {"marketing": ticked, "channels": ["email"] if ticked else [], "text_shown": "Email me news.",
                    "text_version": "sha256:0123456789abcdef", "given_at": T0, "ip": "10.0.0.1"},
    }))  # fmt: skip


def request(nid: str, address: str, template: str, *, basis: dict[str, Any] | None, channel: str = "email") -> Any:
    return ev(NotificationRequested.model_validate({
        "notification_id": nid, "lead_id": "ld_1", "audience": "lead", "channel": channel,
        "recipient": {"address": address}, "template": template, "requested_at": T0, "consent": basis,
    }))  # fmt: skip


def outcome(nid: str, status: str = "sent", at: datetime = T0, channel: str = "email") -> Any:
    return ev(NotificationOutcome(notification_id=nid, lead_id="ld_1", status=status, channel=channel,  # type: ignore[arg-type]
                                  audience="lead", attempts=1, completed_at=at))  # fmt: skip


def test_a_marketing_email_is_answered_with_the_consent_it_went_on_and_the_text_the_person_was_shown():
    basis = {"channels": ["email"], "basis": "consent", "given_at": T0, "capture_id": "cap-dana@example.com"}
    events = [capture("dana@example.com"), request("t1", "Dana@Example.com", "weekly_checkin", basis=basis),
              outcome("t1", at=T0 + timedelta(hours=2))]  # fmt: skip
    (m,) = messages_sent(events, email="dana@example.com", day=date(2026, 11, 26))
    assert (m.template, m.basis, m.basis_channels, m.consent_capture_id) == (
        "weekly_checkin", "consent", ("email",), "cap-dana@example.com",
    )  # fmt: skip
    assert m.proof is not None and m.proof["text_shown"] == "Email me news." and m.proof["form_id"] == "demo"
    assert m.proof["text_version"] == "sha256:0123456789abcdef"
    assert m.proof["ip_sha256"] and "10.0.0.1" not in str(m.as_dict())


def test_the_reply_to_the_persons_own_request_shows_it_needed_no_marketing_basis():
    events = [capture("lee@example.com", ticked=False), request("r1", "lee@example.com", "lead_reply", basis=None),
              outcome("r1")]  # fmt: skip
    (m,) = messages_sent(events, email="lee@example.com")
    assert (m.template, m.basis, m.proof) == ("lead_reply", TRANSACTIONAL, None)


def test_only_messages_that_went_on_that_day_to_that_person_are_listed():
    basis = {"channels": ["email"], "basis": "legitimate_interest"}
    events = [
        request("a", "kim@example.com", "weekly_checkin", basis=basis), outcome("a"),
        request("b", "kim@example.com", "weekly_checkin", basis=basis), outcome("b", at=T0 + timedelta(days=1)),
        request("c", "kim@example.com", "weekly_checkin", basis=None), outcome("c", status="suppressed"),
        request("d", "someone.else@example.com", "weekly_checkin", basis=basis), outcome("d"),
    ]  # fmt: skip
    assert [m.notification_id for m in messages_sent(events, email="kim@example.com", day=T0.date())] == ["a"]
    assert [m.basis for m in messages_sent(events, email="kim@example.com")] == ["legitimate_interest"] * 2


def test_text_messages_are_found_by_phone_number_whatever_its_spacing():
    basis = {"channels": ["sms"], "basis": "consent"}
    events = [request("s", "+1 415 555 0100", "nurture_content", basis=basis, channel="sms"),
              outcome("s", channel="sms")]  # fmt: skip
    assert [m.channel for m in messages_sent(events, phone="+14155550100")] == ["sms"]
