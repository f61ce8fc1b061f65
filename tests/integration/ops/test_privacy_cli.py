"""`leadpipe privacy basis` against the session broker: the records are on the real topics (with
whatever other tests left there); the command finds this person's messages by address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import encode
from tests.integration.ops.helpers import cli, produce
from tests.unit.ops.test_consent_basis import capture, outcome, request


def test_privacy_basis_answers_on_what_basis_a_person_was_emailed_on_a_date(
    registry_topics: str, unique: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", registry_topics)
    email = f"dana.{unique}@example.com"
    basis = {"channels": ["email"], "basis": "consent", "capture_id": f"cap-{email}"}
    produce(registry_topics, "lead.captured.v1", [encode(capture(email))])
    produce(registry_topics, "notification.requested.v1", [
        encode(request(f"touch-{unique}", email, "weekly_checkin", basis=basis)),
        encode(request(f"reply-{unique}", email, "lead_reply", basis=None)),
    ])  # fmt: skip
    produce(registry_topics, "notification.outcome.v1", [encode(outcome(f"touch-{unique}")),
                                                         encode(outcome(f"reply-{unique}"))])  # fmt: skip

    code, out, err = cli(capsys, "privacy", "basis", "--email", email.upper(), "--date", "2026-11-26", "--json")
    assert code == 0, err
    got = {
        m["notification_id"]: (m["template"], m["basis"], (m["proof"] or {}).get("text_shown")) for m in json.loads(out)
    }
    assert got == {
        f"touch-{unique}": ("weekly_checkin", "consent", "Email me news."),
        f"reply-{unique}": ("lead_reply", "none needed: transactional", None),
    }
    code, out, _ = cli(capsys, "privacy", "basis", "--email", email)
    assert code == 0 and "basis consent on email" in out and "shown: 'Email me news.'" in out
    assert "wording sha256:0123456789abcdef" in out


def test_privacy_basis_names_a_bad_date_and_a_missing_address(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "privacy", "basis", "--email", "a@example.com", "--date", "26/11/2026")
    assert code == 2 and "--date: '26/11/2026' is not a YYYY-MM-DD date" in err
    code, _, err = cli(capsys, "privacy", "basis")
    assert code == 2 and "--email or --phone" in err


def test_privacy_erase_publishes_the_request_and_reports_the_receipts_it_did_not_get(
    registry_topics: str, unique: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", registry_topics)
    email = f"erase.{unique}@example.com"
    # No service runs here: the request is published and every receipt is reported missing.
    code, out, err = cli(capsys, "privacy", "erase", "--email", email, "--wait", "1.5", "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["missing"] == ["notifier", "nurture", "scoring"] and doc["receipts"] == []
    code, out, _ = cli(capsys, "tail", "person.erasure_requested.v1", "--from-beginning", "--no-follow")
    assert code == 0 and doc["request_id"] in out and email in out and doc["subject_hash"] in out


def test_privacy_export_writes_one_document_for_the_person(
    registry_topics: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", registry_topics)
    email = f"export.{unique}@example.com"
    produce(registry_topics, "lead.captured.v1", [encode(capture(email))])
    code, _, err = cli(capsys, "privacy", "export", "--email", email.upper(), "-o", str(tmp_path / "x.json"))
    assert code == 0, err
    doc = json.loads((tmp_path / "x.json").read_text())
    assert [c["identity"]["email"] for c in doc["captures"]] == [email] and len(doc["consent_records"]) == 1
    assert "captures 1" in err


def test_privacy_erase_and_export_name_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "privacy", "erase")
    assert code == 2 and "--email, --phone or --lead-id" in err
    code, _, err = cli(capsys, "privacy", "export")
    assert code == 2 and "--email or --phone" in err
