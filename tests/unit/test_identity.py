from __future__ import annotations

import pytest

from schemas.identity import identity_key, normalise_email, normalise_phone


def test_email_is_trimmed_and_lower_cased():
    assert normalise_email("  Dana.Lee@Example.COM ") == "dana.lee@example.com"


def test_the_same_email_written_differently_gives_the_same_key():
    assert identity_key(email="Dana@Example.com") == identity_key(email=" dana@example.com")


def test_email_wins_over_phone_and_badge():
    assert identity_key(email="a@b.co", phone="+14155550100") == identity_key(email="a@b.co")


def test_phone_is_normalised_to_e164():
    assert normalise_phone("(415) 555-0100", "US") == "+14155550100"
    assert identity_key(phone="+1 415 555 0100") == identity_key(phone="(415) 555-0100", default_region="US")


def test_an_unparseable_phone_normalises_to_none():
    assert normalise_phone("not a number") is None


def test_badge_at_a_show_identifies_a_person_without_email_or_phone():
    assert identity_key(show_id="Show-1", badge_id="b-7") == identity_key(show_id="show-1", badge_id="B-7")


def test_keys_carry_no_personal_data():
    key = identity_key(email="dana@example.com")
    assert "dana" not in key and "example" not in key


def test_nothing_to_identify_is_an_error_naming_what_is_needed():
    with pytest.raises(ValueError, match="need an email, a phone, or a show_id with a badge_id"):
        identity_key()
