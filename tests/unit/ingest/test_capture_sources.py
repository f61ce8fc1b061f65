"""The capture-source contract (every capture's record key in one place) and the form and
erasure rules the published API contract states."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from schemas.identity import identity_key
from services.ingest.domain.capture import capture_key
from services.ingest.domain.erasure import parse_erasure
from services.ingest.domain.errors import InvalidInput
from services.ingest.domain.forms import FormConfig, Submitter, capture_form
from services.ingest.domain.scans import build_captures, parse_batch
from services.ingest.domain.text import NONBLANK, strip

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
FORM = FormConfig.from_mapping(
    {
        "id": "f",
        "fields": {
            "email": "identity.email",
            "phone": "identity.phone",
            "seats": "qualification.seats",
            "name": "person.first_name",
        },
        "required": ["name"],
        "default_region": "GB",
    }
)


def submit(values: dict) -> object:
    return capture_form(FORM, values, capture_id="c1", now=NOW, submitter=Submitter("1.2.3.4", "UA"))


def problems(values: dict) -> dict[str, str]:
    with pytest.raises(InvalidInput) as exc:
        submit(values)
    return {p.field: p.problem for p in exc.value.problems}


def test_a_form_capture_is_keyed_by_email_else_by_the_phone_read_in_the_forms_region():
    assert submit({"name": "Ann", "email": "Ann@Example.com"}).key == identity_key(email="ann@example.com")
    local = submit({"name": "Ann", "phone": "020 7946 0958"})
    assert local.key == identity_key(phone="+442079460958") == capture_key(local.payload, default_region="GB")


def test_a_scan_is_keyed_by_show_and_badge_even_when_the_badge_carries_an_email():
    batch = parse_batch({"device_id": "d", "show_id": "expo", "booth": "B1",
                         "scans": [{"badge_id": "ab1", "scanned_at": "2026-05-01T09:00:00Z", "email": "x@y.com"}]})  # fmt: skip
    [good], _ = build_captures(batch, batch_id="b")
    assert good.key == capture_key(good.capture) == identity_key(show_id="expo", badge_id="AB1")
    assert good.key != identity_key(email="x@y.com")


def test_a_list_or_object_for_a_single_field_is_refused_naming_it():
    assert problems({"name": ["Ann", "Bo"], "email": "a@example.com"}) == {"name": "must be a single value"}
    assert problems({"name": "Ann", "email": {"a": 1}}) == {"email": "must be a single value"}


@pytest.mark.parametrize("seats", ["+5", "1_000", "٣", "1234567890", "5.5", True])
def test_seats_are_whole_numbers_of_at_most_nine_ascii_digits(seats: object):
    assert problems({"name": "Ann", "email": "a@example.com", "seats": seats}) == {
        "seats": "must be a whole number (at most 9 digits)"
    }


def test_seats_may_come_as_json_numbers_including_an_integral_float():
    assert submit({"name": "Ann", "email": "a@example.com", "seats": 40.0}).payload.qualification.seats == 40
    assert submit({"name": "Ann", "email": "a@example.com", "seats": " 7 "}).payload.qualification.seats == 7


def test_blank_is_what_python_or_a_json_schema_validator_calls_whitespace():
    for blank in ("\ufeff", "\x1c", "\x85", " \t"):
        assert strip(blank) == "" and not re.search(NONBLANK, blank)
    assert problems({"name": "\ufeff", "email": "a@example.com"}) == {"name": "is required"}


def test_an_erasure_phone_needs_three_digits_as_the_request_event_does():
    """Found by schemathesis: ``{"phone": "0"}`` passed the check and failed building the event (500)."""
    with pytest.raises(InvalidInput) as exc:
        parse_erasure({"phone": "0"})
    assert [(p.field, p.problem) for p in exc.value.problems] == [("phone", "needs at least 3 digits")]
    assert parse_erasure({"phone": " 112 "}).phone == "112"
