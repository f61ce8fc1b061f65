"""Consent from captures reaches ``lead.scored`` per channel, with the proof of the latest one."""

from __future__ import annotations

from dataclasses import replace

from schemas.base import MarketingBasis
from schemas.lead_scored.v1 import Trigger
from services.scoring.domain.lead import LeadState, merge
from services.scoring.domain.scoring import assess, fingerprint, scored_event
from tests.unit.scoring.leads import MODEL, REF, T0, capture, days, lead

TRIGGER = Trigger(event_id="e-1", event_type="lead.captured")


def consent(*channels: str, ticked: bool = True) -> dict[str, object]:
    return {"marketing": ticked, "channels": list(channels), "text_shown": "We may contact you.", "given_at": T0}


def basis_of(state: LeadState) -> MarketingBasis:
    basis = scored_event(state, assess(state, REF, MODEL, T0), TRIGGER, T0).consent
    assert basis is not None
    return basis


def test_a_form_consent_to_email_reaches_lead_scored_as_email_only_with_its_capture_as_proof():
    basis = basis_of(lead(capture(consent=consent("email"), capture_id="form-1")))
    assert ([c.value for c in basis.channels], basis.basis, basis.capture_id, basis.given_at) == (
        ["email"], "consent", "form-1", T0,
    )  # fmt: skip


def test_an_unticked_consent_box_gives_no_channel():
    assert basis_of(lead(capture(consent=consent("email", ticked=False)))).channels == ()


def test_a_scan_with_no_consent_info_gives_no_marketing_consent():
    scan = capture(source_kind="booth_scan", identity={"show_id": "s1", "badge_id": "b1"})
    assert basis_of(lead(scan)).channels == ()


def test_a_later_capture_without_consent_does_not_withdraw_the_consent_given_before():
    state = lead(
        capture(consent=consent("email", "sms"), capture_id="c-1"),
        capture(consent=consent("email", ticked=False), capture_id="c-2", at=T0 + days(1)),
    )
    basis = basis_of(state)
    assert ([c.value for c in basis.channels], basis.capture_id) == (["email", "sms"], "c-1")


def test_merged_leads_keep_the_channels_of_both_and_the_proof_of_the_latest_consent():
    email_lead = lead(capture(consent=consent("email"), capture_id="c-1"))
    later = consent("sms") | {"given_at": T0 + days(2)}
    sms_lead = lead(capture(email="other@example.com", consent=later, capture_id="c-2"))
    basis = basis_of(merge(email_lead, [sms_lead]))
    assert ([c.value for c in basis.channels], basis.capture_id) == (["email", "sms"], "c-2")


def test_a_lead_kept_before_consent_channels_were_recorded_keeps_its_email_consent():
    legacy = replace(lead(capture()), marketing_consent=True)  # what an older state holds
    assert [c.value for c in basis_of(legacy).channels] == ["email"]


def test_a_new_consented_channel_changes_the_fingerprint_so_the_new_basis_is_published():
    email_only = lead(capture(consent=consent("email")))
    both = replace(email_only, consent_channels=("email", "sms"))
    same = assess(email_only, REF, MODEL, T0)
    assert fingerprint(email_only, same) != fingerprint(both, same)
