"""Consent at send time: only marketing to a lead is gated, and only by the basis it carries."""

from pathlib import Path

import pytest

from services.notifier.adapters.templates import load_catalog
from services.notifier.domain.consent import consent_refusal, purpose_of

TEMPLATES = Path(__file__).resolve().parents[3] / "services" / "notifier" / "templates"
CATALOG = load_catalog(TEMPLATES / "_catalog.yaml")


def test_a_marketing_email_without_a_consent_basis_is_refused():
    refusal = consent_refusal(purpose="marketing", audience="lead", channel="email", basis_channels=None)
    assert refusal == "no consent for channel 'email'"


def test_a_marketing_sms_to_a_lead_who_consented_to_email_only_is_refused():
    assert consent_refusal(purpose="marketing", audience="lead", channel="sms", basis_channels=["email"])


def test_a_marketing_email_covered_by_consent_goes():
    assert consent_refusal(purpose="marketing", audience="lead", channel="email", basis_channels=["email"]) is None


def test_the_reply_to_a_persons_own_request_and_staff_alerts_need_no_consent():
    assert consent_refusal(purpose="transactional", audience="lead", channel="email", basis_channels=None) is None
    assert consent_refusal(purpose="marketing", audience="rep", channel="email", basis_channels=None) is None


def test_the_catalog_tells_the_demo_reply_and_staff_alerts_from_marketing():
    assert {t: purpose_of(t, CATALOG) for t in ("lead_reply", "rep_alert", "nurture_content", "weekly_checkin")} == {
        "lead_reply": "transactional",
        "rep_alert": "transactional",
        "nurture_content": "marketing",
        "weekly_checkin": "marketing",
    }


def test_a_template_missing_from_the_catalog_counts_as_marketing():
    assert purpose_of("spring_promo", CATALOG) == "marketing"


def test_every_shipped_template_has_a_purpose():
    shipped = {p.name.split(".", 1)[0] for p in (TEMPLATES / "en").glob("*.txt.j2")}
    assert shipped == set(CATALOG)


def test_a_catalog_entry_with_an_unknown_purpose_is_named(tmp_path: Path):
    (tmp_path / "_catalog.yaml").write_text("lead_reply: promotional\n")
    with pytest.raises(ValueError, match="lead_reply: purpose must be marketing or transactional"):
        load_catalog(tmp_path / "_catalog.yaml")
