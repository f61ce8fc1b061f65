"""``leadpipe privacy export``: one document with every kind of record held on a person, and
nobody else's (a colleague behind the same switchboard number stays out)."""

from typing import Any

from leadpipe.ops.privacy import dead_letters_of, person_export
from schemas.codec import Record
from schemas.envelope import new_event
from schemas.lead_captured.v1 import LeadCaptured
from tests.samples import events

KINDS = ("captures", "consent_records", "engagements", "scores", "stage_history", "assignments", "messages")


def colleague() -> Any:
    capture = next(e.data for e in events() if isinstance(e.data, LeadCaptured))
    other = capture.model_copy(
        update={"identity": capture.identity.model_copy(update={"email": "sam@example.com"}), "capture_id": "sam-1"}
    )
    return new_event(other, source="/tests", subject="ld_sam")


def test_the_export_of_a_person_with_a_full_history_holds_every_kind_of_record():
    doc = person_export([*events(), colleague()], email="dana.director@example.com")
    assert {k: len(doc[k]) for k in KINDS} == dict.fromkeys(KINDS, 1)
    assert doc["lead_ids"] == ["ld_0123456789abcdef"]
    assert doc["scores"][0]["reasons"] and doc["scores"][0]["grade"]
    assert doc["consent_records"][0]["text_shown"] == "Send me product news."
    assert doc["messages"][0]["status"] == "sent"  # joined with its outcome
    assert doc["limits"]


def test_a_colleague_who_gave_the_same_phone_is_not_in_the_export_by_phone():
    doc = person_export([*events(), colleague()], phone="+14155550100")
    assert doc["captures"] == [] and doc["lead_ids"] == []


def test_dead_letters_that_carry_the_address_are_in_the_export():
    raw = [Record(key=b"k", value=b'{"email":"dana.director@example.com"}', headers=[("dlq_error", b"bad")]),
           Record(key=b"k", value=b'{"email":"sam@example.com"}', headers=[])]  # fmt: skip
    found = dead_letters_of(raw, email="Dana.Director@example.com", phone=None)
    assert [d["headers"] for d in found] == [{"dlq_error": "bad"}]
