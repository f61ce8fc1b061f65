from __future__ import annotations

from datetime import timedelta

import pytest

from services.scoring.domain.errors import IdentityError
from services.scoring.domain.identity import KnownLead, new_lead_id, normalise_identifiers, resolve
from services.scoring.domain.lead import merge
from tests.unit.scoring.leads import T0, capture, engagement, lead


def test_an_email_is_trimmed_and_lower_cased_and_a_local_phone_becomes_e164():
    ids = normalise_identifiers(email="  Dana@Example.COM ", phone="(415) 555-0100", country="US")
    assert ids.strings() == ["email:dana@example.com", "phone:+14155550100"]


def test_a_badge_at_a_show_identifies_a_visitor_without_email_or_phone():
    ids = normalise_identifiers(show_id="Show-1", badge_id="b-7")
    assert ids.strings() == ["badge:show-1/B-7"]


def test_an_unparseable_phone_alone_identifies_nobody():
    with pytest.raises(IdentityError, match="phone is not a valid number"):
        normalise_identifiers(phone="12")


def test_an_unparseable_phone_beside_an_email_is_flagged_but_the_email_still_identifies():
    ids = normalise_identifiers(email="a@b.co", phone="12")
    assert ids.invalid_phone and ids.strings() == ["email:a@b.co"]


def test_a_first_capture_gets_a_stable_lead_id_from_its_strongest_identifier():
    first = resolve(["email:a@b.co", "phone:+14155550100"], {}, {})
    assert first.is_new and first.lead_id == new_lead_id("email:a@b.co")


def test_a_capture_linking_two_known_leads_merges_them_into_the_older():
    links = {"email:a@b.co": ("ld_new",), "phone:+14155550100": ("ld_old",)}
    known = {
        "ld_new": KnownLead(T0, ("email:a@b.co",)),
        "ld_old": KnownLead(T0 - timedelta(days=3), ("phone:+14155550100",)),
    }
    result = resolve(["email:a@b.co", "phone:+14155550100"], links, known)
    assert result.lead_id == "ld_old" and result.merged_lead_ids == ("ld_new",)


def test_a_merged_lead_keeps_both_histories_and_the_survivors_answers():
    older = lead(capture(email="dana@example.com", title="Director", timeline="now"), engagement("email_opened"))
    newer = lead(
        capture(email="dana.lee@gmail.com", title="Intern", need="a tool", capture_id="c-2"),
        engagement("unsubscribed", email="dana.lee@gmail.com"),
    )
    merged = merge(older, [newer])
    assert merged.job_title == "Director" and merged.need == "a tool"
    assert [e.kind for e in merged.engagements] == ["email_opened", "unsubscribed"]
    assert merged.suppressed_channels == ("email",)
    assert newer.lead_id in merged.merged_from
    assert set(older.identifiers) | set(newer.identifiers) == set(merged.identifiers)


def test_a_late_offline_capture_fills_gaps_but_does_not_overwrite_newer_answers():
    state = lead(
        capture(title="VP Sales", at=T0, capture_id="new"),
        capture(title="Sales Manager", need="crm", at=T0 - timedelta(days=2), capture_id="old"),
    )
    assert state.job_title == "VP Sales" and state.need == "crm"
    assert state.first_captured_at == T0 - timedelta(days=2)
