"""An erased address: no marketing unless consent was given again after the erasure; the dev
outbox keeps only ids of what went to the person."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from services.notifier.adapters.outbox import erase_from_outbox
from services.notifier.domain.erasure import ERASED_ERROR, erased_refusal, redact_outbox_line

ERASED = datetime(2026, 11, 1, tzinfo=UTC)


def refusal(**kw: object) -> str | None:
    args: dict[str, object] = {"purpose": "marketing", "audience": "lead", "erased_at": ERASED,
                               "basis": "consent", "consent_given_at": ERASED - timedelta(days=30)}  # fmt: skip
    return erased_refusal(**(args | kw))  # type: ignore[arg-type]


def test_marketing_to_an_erased_address_on_consent_given_before_the_erasure_is_refused():
    assert refusal() == ERASED_ERROR


def test_marketing_to_an_erased_address_on_legitimate_interest_is_refused():
    assert refusal(basis="legitimate_interest", consent_given_at=None) == ERASED_ERROR


def test_marketing_to_an_erased_address_goes_when_the_person_opted_in_again_after_the_erasure():
    assert refusal(consent_given_at=ERASED + timedelta(minutes=1)) is None


def test_the_reply_to_the_persons_own_new_request_and_staff_alerts_go():
    assert refusal(purpose="transactional") is None
    assert refusal(audience="rep") is None


def test_an_address_never_erased_is_not_refused_here():
    assert refusal(erased_at=None) is None


def test_a_redacted_outbox_line_keeps_only_ids_channel_template_and_time():
    line = {"at": "t", "notification_id": "n1", "lead_id": "ld_1", "channel": "email", "audience": "lead",
            "template": "lead_reply", "locale": "en", "to": "dana@example.com", "subject": "Hi Dana", "file": "x.eml"}  # fmt: skip
    out = redact_outbox_line(line)
    assert out == {"at": "t", "notification_id": "n1", "lead_id": "ld_1", "channel": "email", "audience": "lead",
                   "template": "lead_reply", "locale": "en", "to": "[erased]", "erased": True}  # fmt: skip


def test_a_redacted_rep_alert_keeps_the_reps_address():
    out = redact_outbox_line({"audience": "rep", "to": "rep@sales.example.com", "subject": "New lead: Dana"})
    assert out == {"audience": "rep", "to": "rep@sales.example.com", "erased": True}


def test_erasing_from_the_outbox_redacts_the_persons_lines_deletes_their_mail_files_and_keeps_others(tmp_path: Path):
    (tmp_path / "a.eml").write_text("To: dana@example.com")
    (tmp_path / "b.eml").write_text("To: sam@example.com")
    lines = [
        {"notification_id": "n1", "lead_id": "ld_1", "audience": "lead", "to": "Dana@Example.com", "file": "a.eml"},
        {"notification_id": "n2", "lead_id": "ld_2", "audience": "lead", "to": "sam@example.com", "file": "b.eml"},
        {"notification_id": "n3", "lead_id": "ld_1", "audience": "lead", "to": "+14155550100", "text": "Hi Dana"},
        {"notification_id": "n4", "lead_id": "ld_1", "audience": "rep", "to": "rep@sales.example.com",
         "subject": "New lead: Dana"},
        {"notification_id": "n5", "lead_id": "ld_9", "audience": "rep", "to": "rep@sales.example.com",
         "subject": "New lead: Dana", "file": "c.eml"},
    ]  # fmt: skip
    (tmp_path / "c.eml").write_text("Subject: New lead: Dana")
    (tmp_path / "outbox.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))

    # ld_1 is named (and is the lead of the lines sent to Dana); the rep alert about ld_9 is about
    # someone else and stays.
    assert erase_from_outbox(tmp_path, {"dana@example.com", "+14155550100"}, {"ld_1"}) == (3, 1)

    after = [orjson.loads(x) for x in (tmp_path / "outbox.jsonl").read_bytes().splitlines()]
    assert [x["to"] for x in after] == ["[erased]", "sam@example.com", "[erased]", "rep@sales.example.com",
                                        "rep@sales.example.com"]  # fmt: skip
    assert [x.get("erased", False) for x in after] == [True, False, True, True, False]
    assert not (tmp_path / "a.eml").exists() and (tmp_path / "b.eml").exists() and (tmp_path / "c.eml").exists()


def test_the_lead_a_message_to_the_person_went_to_is_theirs_and_its_rep_alerts_are_redacted(tmp_path: Path):
    lines = [
        {"notification_id": "n1", "lead_id": "ld_7", "audience": "lead", "to": "dana@example.com"},
        {"notification_id": "n2", "lead_id": "ld_7", "audience": "rep", "to": "rep@x.com", "subject": "Dana Lee"},
    ]
    (tmp_path / "outbox.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert erase_from_outbox(tmp_path, {"dana@example.com"}, set()) == (2, 0)
    assert b"Dana" not in (tmp_path / "outbox.jsonl").read_bytes()
    assert erase_from_outbox(tmp_path, {"dana@example.com"}, set()) == (0, 0)  # twice: nothing more


def test_erasing_from_an_outbox_that_was_never_written_does_nothing(tmp_path: Path):
    assert erase_from_outbox(tmp_path, {"dana@example.com"}, set()) == (0, 0)
