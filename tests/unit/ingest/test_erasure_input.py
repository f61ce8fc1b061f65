"""An erasure request's body, every bad field named; and the spooled records that are the person's."""

import pytest

from schemas.identity import identity_key
from services.ingest.domain.erasure import parse_erasure, spool_keys
from services.ingest.domain.errors import InvalidInput


def fields(body: object) -> list[str]:
    with pytest.raises(InvalidInput) as exc:
        parse_erasure(body)
    return [p.field for p in exc.value.problems]


def test_a_request_names_the_person_by_email_phone_or_lead_ids():
    got = parse_erasure({"email": " dana@example.com ", "phone": "+1 415 555 0100", "lead_ids": ["ld_1"]})
    assert (got.email, got.phone, got.lead_ids) == ("dana@example.com", "+1 415 555 0100", ["ld_1"])


def test_a_request_that_names_nobody_is_refused_naming_the_email_field():
    assert fields({}) == ["email"]


def test_every_bad_field_is_named():
    assert fields({"email": "not-an-address", "phone": "call me", "lead_ids": ["", 3], "name": "Dana"}) == [
        "email", "phone", "lead_ids.0", "lead_ids.1", "name",
    ]  # fmt: skip


def test_a_body_that_is_not_an_object_is_refused():
    assert fields(["dana@example.com"]) == ["body"]


def test_the_persons_spooled_records_are_those_keyed_by_their_email_or_phone():
    assert spool_keys("Dana@example.com", "+14155550100") == [
        identity_key(email="dana@example.com"),
        identity_key(phone="+14155550100"),
    ]
