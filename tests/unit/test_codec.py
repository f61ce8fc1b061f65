from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import DecodeError, LeadCaptured, LeadScored, RecordTooLarge, decode, decode_record, encode, new_event
from schemas.codec import Record
from schemas.errors import UnknownEventType
from tests.samples import events, payloads


@pytest.mark.parametrize("event", events(), ids=lambda e: e.type)
def test_every_event_survives_a_round_trip_through_a_record(event):
    record = encode(event)
    assert decode_record(record) == event


def test_the_record_key_is_the_subject_so_a_leads_events_share_a_partition():
    event = events()[0]
    assert encode(event).key == event.subject.encode()


def test_context_attributes_travel_as_ce_headers():
    record = encode(events()[0])
    names = {k for k, _ in record.headers}
    assert {
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_dataschema",
        "ce_specversion",
        "content-type",
    } <= names
    assert record.header("ce_dataschema") == b"urn:leadpipe:schema:lead.captured:v1"
    assert record.header("ce_time") == b"2026-05-04T09:30:00Z"


def test_a_bad_payload_field_is_named_in_the_error():
    record = encode(events()[0])
    bad = record.value.replace(b'"booth_rating":"hot"', b'"booth_rating":"lukewarm"')
    assert bad != record.value
    with pytest.raises(DecodeError) as err:
        decode(bad, record.headers)
    assert err.value.field == "data.booth_rating"
    assert "Input should be" in str(err.value)


def test_strict_decoding_refuses_an_unknown_value_of_an_open_enum():
    record = encode(events()[0])
    bad = record.value.replace(b'"source_kind":"booth_scan"', b'"source_kind":"carrier_pigeon"')
    with pytest.raises(DecodeError) as err:
        decode(bad, record.headers, strict=True)
    assert err.value.field == "data.source_kind"


def test_strict_decoding_refuses_unknown_payload_fields_because_payloads_are_closed():
    record = encode(events()[0])
    bad = record.value[:-1] + b',"surprise":1}'
    with pytest.raises(DecodeError) as err:
        decode(bad, record.headers, strict=True)
    assert err.value.field == "data.surprise"


def test_lenient_decoding_still_names_a_real_error_next_to_an_unknown_field():
    record = encode(events()[0])
    bad = record.value.replace(b'"booth_rating":"hot"', b'"booth_rating":"lukewarm"')[:-1] + b',"surprise":1}'
    with pytest.raises(DecodeError) as err:
        decode(bad, record.headers)
    assert err.value.field == "data.booth_rating"
    assert "surprise" not in str(err.value)


def test_producers_cannot_build_a_payload_with_a_field_the_model_does_not_declare():
    data = events()[0].data.model_dump()
    with pytest.raises(ValidationError, match="surprise"):
        type(events()[0].data).model_validate({**data, "surprise": 1})


def test_a_missing_header_is_named():
    record = encode(events()[0])
    headers = [(k, v) for k, v in record.headers if k != "ce_id"]
    with pytest.raises(DecodeError, match="ce_id: missing"):
        decode(record.value, headers)


def test_an_unknown_dataschema_is_its_own_error():
    record = encode(events()[0])
    headers = [(k, b"urn:leadpipe:schema:lead.captured:v9" if k == "ce_dataschema" else v) for k, v in record.headers]
    with pytest.raises(UnknownEventType):
        decode(record.value, headers)


def test_decoding_as_the_wrong_type_fails():
    with pytest.raises(DecodeError, match=r"expected urn:leadpipe:schema:lead\.scored:v1"):
        decode_record(encode(events()[0]), LeadScored)


def test_a_naive_timestamp_is_rejected_with_the_field_named():
    with pytest.raises(ValueError, match="captured_at"):
        LeadCaptured.model_validate(payloads()[0].model_dump() | {"captured_at": "2026-05-04T09:30:00"})


def test_an_oversized_record_is_refused_before_it_reaches_the_broker():
    payload = payloads()[0]
    big = payload.model_copy(update={"notes": tuple("x" * 4000 for _ in range(100))})
    event = new_event(big, source="/tests", subject="k")
    with pytest.raises(RecordTooLarge, match="over the 100000-byte limit"):
        encode(event, max_bytes=100_000)


def test_correlation_and_synthetic_flags_follow_the_cause():
    cause = new_event(payloads()[0], source="/t", subject="k", correlationid="corr-x", synthetic=True)
    follow = new_event(payloads()[1], source="/t", subject="k", cause=cause)
    decoded = decode_record(encode(follow))
    assert decoded.correlationid == "corr-x"
    assert decoded.synthetic is True


def test_record_size_counts_key_value_and_headers():
    record = Record(key=b"ab", value=b"cde", headers=[("h", b"12")])
    assert record.size == 2 + 3 + 3


def test_an_old_version_with_an_upcaster_decodes_into_the_current_model(monkeypatch):
    from schemas import catalog
    from schemas.lead_stage_changed.v1 import LeadStageChanged

    old = "urn:leadpipe:schema:lead.stage_changed:v0"

    def upcast(doc: dict) -> dict:
        return {
            "lead_id": doc["lead"],
            "from_stage": None,
            "to_stage": doc["stage"],
            "reason": "upcast from v0",
            "changed_at": doc["at"],
        }

    monkeypatch.setitem(catalog.UPCASTERS, old, (LeadStageChanged, upcast))
    record = encode(events()[3])
    headers = [(k, old.encode() if k == "ce_dataschema" else v) for k, v in record.headers]
    event = decode(b'{"lead": "ld-1", "stage": "engaged", "at": "2026-05-04T09:30:02Z"}', headers)
    assert isinstance(event.data, LeadStageChanged)
    assert event.data.to_stage == "engaged"
    assert event.dataschema == LeadStageChanged.dataschema()
