"""Which events an erasure takes, what an erased lead's event keeps, and the projector honouring
a request in its place in the batch (with a fake store)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.codec import encode
from schemas.envelope import Envelope, new_event
from schemas.identity import keyed_hash
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.person_erased.v1 import PersonErased
from schemas.person_erasure_requested.v1 import erasure_request
from services.console.adapters.metrics import ConsoleMetrics
from services.console.domain.erasure import Erasure, erasure_of, identity_hashes, names_person, redact
from services.console.domain.facts import to_fact
from services.console.domain.projection import Fact, fold
from services.console.handlers import Projector

SECRET = "test-secret"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
EMAIL = keyed_hash(SECRET, "email", "jo@acme.test")


def fact(event_type: str, data: dict[str, Any], minutes: float = 0, lead_id: str | None = None) -> Fact:
    return to_fact(event_type, f"{event_type}-{minutes}", T0 + timedelta(minutes=minutes), {**data, "lead_id": lead_id})


def scored(**profile: str) -> Fact:
    return fact("lead.scored", {"score": 70.0, "grade": "A", "model_version": "m1", "core_account": True,
                                "profile": {"full_name": "Jo Example", "company": "Acme", **profile},
                                "reasons": [{"description": "works at Acme", "points": 10}],
                                "capture": {"source_kind": "web_form", "first_captured_at": T0.isoformat()}},
                lead_id="ld1")  # fmt: skip


def erasure(**kw: Any) -> Erasure:
    return Erasure(
        "req-1", T0 + timedelta(hours=1), frozenset(kw.get("hashes", {EMAIL})), frozenset(kw.get("leads", ()))
    )


def test_an_erased_score_keeps_what_the_funnel_counts_and_no_personal_field() -> None:
    row = fold("ld1", [redact(scored(email="jo@acme.test", phone="+14155550100"))])
    assert (row.grade, row.score, row.source_kind, row.captured_at, row.core_account) == (
        "A",
        70.0,
        "web_form",
        T0,
        True,
    )
    assert (row.name, row.email, row.phone, row.company, row.country, row.reasons) == (None, None, None, None, None, ())


def test_redacting_drops_free_text_and_twice_is_once() -> None:
    note = fact("lead.outcome_logged", {"rep_id": "rep-ana", "outcome": "lost", "note": "Jo from Acme"}, 5, "ld1")
    once = redact(note)
    assert "Jo" not in str(once.data) and "Jo" not in once.summary
    assert once.data["outcome"] == "lost" and once.data["erased"] is True
    assert redact(once) == once


def test_a_capture_of_the_persons_email_before_the_request_is_theirs() -> None:
    capture = fact("lead.captured", {"source_kind": "web_form", "identity": {"email": " Jo@Acme.test "}}, 10)
    assert erasure_of(capture, identity_hashes(SECRET, capture), [erasure()]) is not None


def test_a_capture_after_the_request_is_the_person_coming_back_and_is_kept() -> None:
    capture = fact("lead.captured", {"source_kind": "web_form", "identity": {"email": "jo@acme.test"}}, 120)
    assert erasure_of(capture, identity_hashes(SECRET, capture), [erasure()]) is None


def test_any_event_of_an_erased_lead_is_theirs_whenever_it_comes() -> None:
    late = fact("lead.stage_changed", {"to_stage": "recycled", "reason": "x"}, 600, "ld1")
    assert erasure_of(late, identity_hashes(SECRET, late), [erasure(leads={"ld1"})]) is not None
    assert erasure_of(late, identity_hashes(SECRET, late), [erasure(leads={"ld2"})]) is None


def test_a_colleague_sharing_the_switchboard_phone_keeps_their_lead() -> None:
    phone = "+14155550100"
    assert names_person(None, phone, person_email="jo@acme.test", person_phone=phone)
    assert not names_person("ana@acme.test", phone, person_email="jo@acme.test", person_phone=phone)
    phone_hash = keyed_hash(SECRET, "phone", phone)
    colleague = fact("lead.captured", {"identity": {"email": "ana@acme.test", "phone": phone}}, 1)
    assert erasure_of(colleague, identity_hashes(SECRET, colleague), [erasure(hashes={phone_hash})]) is None
    phone_only = fact("lead.captured", {"identity": {"phone": "+1 415 555 0100"}}, 1)
    assert erasure_of(phone_only, identity_hashes(SECRET, phone_only), [erasure(hashes={phone_hash})]) is not None


@dataclass
class Rec:
    topic: str
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    async def project(self, facts: Sequence[Fact], hashes: Sequence[frozenset[str]] | None = None) -> int:
        self.calls.append(("project", [f.type for f in facts]))
        return len(facts)

    async def erase(self, **request: Any) -> tuple[int, int]:
        if self.fail:
            raise RuntimeError("database gone")
        self.calls.append(("erase", request["request_id"]))
        return 1, 4


def rec(event: Envelope[Any]) -> Rec:
    record = encode(event)
    return Rec(event.data.topic(), record.value, record.headers)


def batch() -> list[Rec]:
    note = LeadOutcomeLogged(outcome_id="o1", lead_id="ld1", rep_id="rep-ana", outcome="lost", logged_at=T0)
    request = erasure_request(SECRET, request_id="req-1", requested_at=T0, requested_by="cli:t", email="jo@acme.test")
    return [
        rec(new_event(e, source="t", subject="s"))
        for e in (note, request, note.model_copy(update={"outcome_id": "o2"}))
    ]


async def test_a_request_is_honoured_in_its_place_and_the_receipt_names_no_one() -> None:
    store, sent = FakeStore(), []

    async def publish(event: Envelope[Any]) -> None:
        sent.append(event)

    projector = Projector(store, ConsoleMetrics(CollectorRegistry()), privacy_secret=SECRET, publish=publish)
    assert await projector.handle(batch()) == 2
    assert store.calls == [
        ("project", ["lead.outcome_logged"]),
        ("erase", "req-1"),
        ("project", ["lead.outcome_logged"]),
    ]
    [receipt] = sent
    assert isinstance(receipt.data, PersonErased) and receipt.id == "req-1/console"
    assert {i.store: i.count for i in receipt.data.items} == {"postgres:console_leads": 1, "postgres:console_events": 4}
    assert "jo@acme" not in receipt.data.model_dump_json()


async def test_a_rebuild_sends_no_receipt_and_a_failed_erasure_stops_the_batch() -> None:
    store = FakeStore()
    await Projector(store, ConsoleMetrics(CollectorRegistry()), privacy_secret=SECRET).handle(batch())
    assert ("erase", "req-1") in store.calls
    failing = FakeStore(fail=True)
    with pytest.raises(RuntimeError, match="database gone"):
        await Projector(failing, ConsoleMetrics(CollectorRegistry()), privacy_secret=SECRET).handle(batch())
    assert failing.calls == [("project", ["lead.outcome_logged"])]  # nothing after the request
