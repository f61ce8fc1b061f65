"""Ingest's pure rules, no fixtures."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from services.ingest.domain.booth import detect_mapping, prepare_scans
from services.ingest.domain.errors import InvalidInput
from services.ingest.domain.forms import FormConfig, Submitter, build_capture, is_spam
from services.ingest.domain.scans import build_captures, parse_batch, scan_key
from services.ingest.domain.uploads import parse_mapping, scans_from_vcard
from services.ingest.domain.webhooks import BadSignature, sign, verify_signature

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
CONFIG = FormConfig.from_mapping(
    {
        "id": "f",
        "fields": {
            "email": "identity.email",
            "phone": "identity.phone",
            "name": "person.first_name",
            "budget": "qualification.budget",
            "color": "qualification.color",
        },
        "required": ["name"],
        "honeypot": "hp",
        "consent": {"field": "ok", "text": "We may email you."},
    }
)


def capture(values: dict) -> object:
    return build_capture(CONFIG, values, capture_id="c1", now=NOW, submitter=Submitter("1.2.3.4", "UA"))


def test_a_form_maps_fields_and_records_consent_proof():
    c = capture({"email": "a@example.com", "name": "Ann", "budget": "10k", "color": "red", "ok": "on"})
    assert c.person.first_name == "Ann" and c.qualification.budget == "10k"
    assert c.qualification.other == {"color": "red"}
    assert (c.consent.marketing, c.consent.text_shown, c.consent.ip, c.consent.given_at) == (
        True,
        "We may email you.",
        "1.2.3.4",
        NOW,
    )


def test_an_unticked_consent_box_is_recorded_as_no_consent():
    assert capture({"email": "a@example.com", "name": "Ann"}).consent.marketing is False


def test_a_form_names_every_bad_field_at_once():
    with pytest.raises(InvalidInput) as err:
        capture({"email": "nope", "phone": "12"})
    assert {(p.field, p.problem) for p in err.value.problems} == {
        ("name", "is required"),
        ("email", "is not an email address"),
        ("phone", "is not a valid phone number (use +country code)"),
    }


def test_a_form_needs_an_email_or_a_phone():
    with pytest.raises(InvalidInput, match=r"an email address or a phone number is required"):
        capture({"name": "Ann"})


def test_a_filled_honeypot_is_spam():
    assert is_spam(CONFIG, {"hp": "x"}) and not is_spam(CONFIG, {"hp": " "})


def test_a_form_config_with_a_bad_target_is_refused_naming_it():
    with pytest.raises(InvalidInput, match=r"fields.x: target 'nowhere' is not section\.field"):
        FormConfig.from_mapping({"id": "f", "fields": {"x": "nowhere"}})


def test_two_scans_of_one_badge_at_one_show_share_a_key_whatever_the_badge_carries():
    batch = parse_batch({"device_id": "d", "show_id": "Expo", "booth": "B", "scans": [
        {"badge_id": "ab1", "scanned_at": "2026-05-01T09:00:00Z", "email": "x@example.com"},
        {"badge_id": "AB1", "scanned_at": "2026-05-01T10:00:00Z"},
    ]})  # fmt: skip
    good, bad = build_captures(batch, batch_id="b")
    assert not bad and good[0].key == good[1].key == scan_key("expo", "AB1")
    assert good[0].scan_id != good[1].scan_id


def test_a_scan_without_an_id_gets_the_same_id_on_re_upload():
    raw = {
        "device_id": "d",
        "show_id": "s",
        "booth": "b",
        "scans": [{"badge_id": "1", "scanned_at": "2026-05-01T09:00:00Z"}],
    }
    assert (
        build_captures(parse_batch(raw), batch_id="x")[0][0].scan_id
        == build_captures(parse_batch(raw), batch_id="y")[0][0].scan_id
    )


def test_a_webhook_signature_must_match_and_be_fresh():
    ts = 1_000_000
    sig = sign("s", ts, b"{}")
    assert verify_signature("s", timestamp=str(ts), signature=sig, body=b"{}", now=ts + 10, window_s=300) == ts
    for kwargs, reason in [
        ({"signature": sign("other", ts, b"{}")}, "signature does not match"),
        ({"now": ts + 301}, "timestamp outside the allowed window"),
        ({"signature": None}, "missing signature or timestamp header"),
    ]:
        args = {"timestamp": str(ts), "signature": sig, "body": b"{}", "now": ts, "window_s": 300} | kwargs
        with pytest.raises(BadSignature, match=reason):
            verify_signature("s", **args)


def test_csv_columns_map_to_scan_fields_and_the_rest_become_answers():
    mapping = detect_mapping(
        ["Badge", "When", "Budget", "Color"], parse_mapping("Badge=badge_id,When=scanned_at,Budget=answers.budget")
    )
    row = {"Badge": "B1", "When": "2026-05-01T09:00:00Z", "Budget": "5k", "Color": "blue"}
    assert [p.scan for p in prepare_scans([row], mapping, None).scans] == [
        {"badge_id": "B1", "scanned_at": "2026-05-01T09:00:00+00:00", "answers": {"budget": "5k", "color": "blue"}}
    ]


def test_a_bad_header_mapping_is_refused_naming_the_option():
    with pytest.raises(InvalidInput, match="--map"):
        parse_mapping("Badge")


def test_a_vcard_becomes_a_scan():
    [scan] = scans_from_vcard(
        "BEGIN:VCARD\nN:Doe;Jo;;;\nEMAIL:jo@example.com\nORG:Acme;Sales\nEND:VCARD\n", "2026-05-01T00:00:00Z"
    )
    assert scan == {
        "last_name": "Doe",
        "first_name": "Jo",
        "email": "jo@example.com",
        "company": "Acme",
        "scanned_at": "2026-05-01T00:00:00Z",
        "badge_id": "jo@example.com",
    }


# -- consent -----------------------------------------------------------------------------------------------
TWO_BOXES_MAPPING = {
    "id": "f2",
    "fields": {"email": "identity.email", "phone": "identity.phone"},
    "consent": [
        {"field": "news", "text": "Email me news.", "channels": ["email"]},
        {"field": "texts", "text": "Text me too.", "channels": ["sms"]},
    ],
}
TWO_BOXES = FormConfig.from_mapping(TWO_BOXES_MAPPING)


def test_a_form_with_one_box_per_channel_records_consent_only_for_the_boxes_ticked():
    c = build_capture(TWO_BOXES, {"email": "a@example.com", "news": "on"}, capture_id="c1", now=NOW,
                      submitter=Submitter("1.2.3.4", "UA"))  # fmt: skip
    assert (c.consent.marketing, [ch.value for ch in c.consent.channels]) == (True, ["email"])
    assert c.consent.text_shown == "Email me news.\nText me too."
    # The wording's version: the same wording gives the same version, another wording another.
    digest = hashlib.sha256(b"Email me news.\nText me too.").hexdigest()[:16]
    assert c.consent.text_version == f"sha256:{digest}"
    other = FormConfig.from_mapping(
        {**TWO_BOXES_MAPPING, "consent": [{"field": "news", "text": "Email me.", "channels": ["email"]}]}
    )
    again = build_capture(other, {"email": "a@example.com", "news": "on"}, capture_id="c2", now=NOW,
                          submitter=Submitter("1.2.3.4", "UA"))  # fmt: skip
    assert again.consent.text_version not in (None, c.consent.text_version)


def test_an_unticked_consent_box_covers_no_channel():
    assert capture({"email": "a@example.com", "name": "Ann"}).consent.channels == ()


def test_a_consent_box_without_text_or_with_an_unknown_channel_is_named_in_the_error():
    with pytest.raises(InvalidInput) as err:
        FormConfig.from_mapping(
            {"id": "f", "fields": {}, "consent": [{"field": "a"}, {"field": "b", "text": "t", "channels": ["fax"]}]}
        )
    assert [p.field for p in err.value.problems] == ["consent[0]", "consent[1].channels"]


def test_a_scan_carries_the_consent_the_booth_recorded_and_a_scan_without_it_carries_none():
    batch = parse_batch(
        {
            "device_id": "d",
            "show_id": "s",
            "booth": "b",
            "scans": [
                {"badge_id": "1", "scanned_at": "2026-05-01T09:00:00Z", "email": "a@example.com",
                 "consent": {"marketing": True, "channels": ["email"], "text_shown": "Opt in to news"}},
                {"badge_id": "2", "scanned_at": "2026-05-01T09:01:00Z", "email": "b@example.com"},
            ],
        }
    )  # fmt: skip
    good, bad = build_captures(batch, batch_id="b1")
    assert bad == []
    with_consent, without = good[0].capture.consent, good[1].capture.consent
    assert [c.value for c in with_consent.channels] == ["email"] and with_consent.given_at == NOW
    assert without is None


def test_a_scan_with_a_bad_consent_is_rejected_naming_the_field_and_the_batch_keeps_the_rest():
    batch = parse_batch(
        {
            "device_id": "d",
            "show_id": "s",
            "booth": "b",
            "scans": [
                {"badge_id": "1", "scanned_at": "2026-05-01T09:00:00Z", "consent": {"channels": ["email"]}},
                {"badge_id": "2", "scanned_at": "2026-05-01T09:01:00Z"},
            ],
        }
    )
    good, bad = build_captures(batch, batch_id="b1")
    assert [g.index for g in good] == [1]
    assert [p.field for p in bad[0].problems] == ["scans[0].consent.marketing"]


def test_a_scanner_export_with_a_consent_column_carries_it_and_a_row_without_one_carries_none():
    rows = [
        {"Badge": "1", "Time": "2026-05-01T09:00:00Z", "Email": "a@example.com", "Opt-in": "yes",
         "Opt-in channels": "email sms"},
        {"Badge": "2", "Time": "2026-05-01T09:01:00Z", "Email": "b@example.com", "Opt-in": "", "Opt-in channels": ""},
    ]  # fmt: skip
    mapping = detect_mapping(list(rows[0]), parse_mapping("Time=scanned_at"))
    assert mapping.target("Opt-in") == "consent" and mapping.target("Opt-in channels") == "consent_channels"
    scans = [p.scan for p in prepare_scans(rows, mapping, None).scans]
    assert scans[0]["consent"] == {"marketing": True, "channels": ["email", "sms"]}
    assert "consent" not in scans[1]
