"""The erasure request names the person; the subject is remembered by a keyed hash only."""

import hashlib
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.identity import erasure_hashes, keyed_hash
from schemas.person_erasure_requested.v1 import erasure_request

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_the_subject_hash_is_keyed_so_hashing_a_list_of_addresses_does_not_find_it():
    req = erasure_request("secret-1", request_id="r", requested_at=NOW, requested_by="cli:op", email="Dana@Example.com")
    assert req.subject_hash == keyed_hash("secret-1", "email", "dana@example.com")
    assert req.subject_hash != hashlib.sha256(b"email:dana@example.com").hexdigest()
    assert req.subject_hash != erasure_hashes("secret-2", email="dana@example.com")[0]


def test_every_identifier_given_is_hashed_for_the_suppression_list_in_its_normal_form():
    req = erasure_request("s", request_id="r", requested_at=NOW, requested_by="x", email="d@e.com",
                          phone="+1 (415) 555-0100")  # fmt: skip
    assert req.identifier_hashes == [keyed_hash("s", "email", "d@e.com"), keyed_hash("s", "phone", "+14155550100")]


def test_a_request_by_lead_id_alone_has_a_subject_but_no_address_hash():
    req = erasure_request("s", request_id="r", requested_at=NOW, requested_by="x", lead_ids=["ld_1"])
    assert req.subject_hash == keyed_hash("s", "lead", "ld_1") and req.identifier_hashes == []


def test_a_request_naming_nobody_is_refused_naming_the_fields():
    with pytest.raises(ValidationError, match="email, phone or lead_ids"):
        erasure_request("s", request_id="r", requested_at=NOW, requested_by="x")
