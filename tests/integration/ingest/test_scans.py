"""Booth-scan batches: API keys, per-item results, dedupe and Idempotency-Key."""

from __future__ import annotations

import uuid

from schemas.identity import identity_key
from tests.integration.ingest.conftest import Ingest, nothing_published, read_events

KEY = {"authorization": "Bearer dev-scanner-key"}


def batch(show: str, scans: list[dict]) -> dict:
    return {"device_id": "dev-1", "show_id": show, "booth": "B12", "staff": "sam", "scans": scans}


def scan(badge: str, **extra: object) -> dict:
    return {"badge_id": badge, "scanned_at": "2026-05-01T09:30:00+02:00", "email": f"{badge}@example.com"} | extra


async def test_a_batch_gets_per_item_results_and_only_valid_scans_are_published(ingest: Ingest):
    show = f"show-{uuid.uuid4().hex[:6]}"
    scans = [
        scan("A1", scan_id="s1", rating="hot", notes="wants 50 seats", answers={"timeline": "Q3", "color": "blue"}),
        scan("A2", scan_id="s2", rating="lukewarm"),
        {"scan_id": "s3", "scanned_at": "2026-05-01T09:31:00Z"},
        scan("A1", scan_id="s1"),
    ]
    resp = await ingest.client.post("/v1/scans", json=batch(show, scans), headers=KEY)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 2)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "duplicate"]
    assert body["results"][1]["errors"][0]["field"] == "scans[1].rating"
    assert body["results"][2]["errors"][0]["field"] == "scans[2].badge_id"
    [event] = await read_events(
        ingest.settings.kafka_bootstrap_servers, "lead.captured.v1", {body["results"][0]["event_id"]}
    )
    assert event.subject == identity_key(show_id=show, badge_id="A1")
    assert event.data.captured_at.isoformat() == "2026-05-01T07:30:00+00:00"  # device time kept
    assert event.data.notes == ("wants 50 seats",)
    assert event.data.qualification.timeline == "Q3" and event.data.qualification.other == {"color": "blue"}
    assert event.data.context.booth == "B12" and event.data.booth_rating == "hot"


async def test_the_same_badge_twice_at_a_show_is_two_notes_under_one_lead_key(ingest: Ingest):
    show = f"show-{uuid.uuid4().hex[:6]}"
    first = await ingest.client.post(
        "/v1/scans", json=batch(show, [scan("B7", scan_id="x1", notes="met Monday")]), headers=KEY
    )
    second = await ingest.client.post(
        "/v1/scans",
        json=batch(show, [{"badge_id": "b7", "scanned_at": "2026-05-02T10:00:00Z", "notes": "back Tuesday"}]),
        headers=KEY,
    )
    ids = {first.json()["results"][0]["event_id"], second.json()["results"][0]["event_id"]}
    events = await read_events(ingest.settings.kafka_bootstrap_servers, "lead.captured.v1", ids)
    assert len(events) == 2
    assert {e.subject for e in events} == {identity_key(show_id=show, badge_id="B7")}
    assert sorted(n for e in events for n in e.data.notes) == ["back Tuesday", "met Monday"]


async def test_a_retried_batch_with_the_same_idempotency_key_is_counted_once(ingest: Ingest):
    show = f"show-{uuid.uuid4().hex[:6]}"
    body = batch(show, [scan(f"C{i}") for i in range(20)])
    headers = KEY | {"idempotency-key": f"upload-{uuid.uuid4()}"}
    first = await ingest.client.post("/v1/scans", json=body, headers=headers)
    again = await ingest.client.post("/v1/scans", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert ingest.metric("leadpipe_ingest_events_published_total", {"type": "lead.captured", "source": "scans"}) == 20
    # the same scans without the key are recognised by scan id
    third = await ingest.client.post("/v1/scans", json=body, headers=KEY)
    assert third.json()["duplicate"] == 20
    other = await ingest.client.post("/v1/scans", json=batch(show, [scan("Z9")]), headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_batch_with_an_unknown_consent_basis_is_refused_naming_the_field(ingest: Ingest):
    body = batch(f"show-{uuid.uuid4().hex[:6]}", [scan("C1")]) | {"consent": {"basis": "yes please"}}
    resp = await ingest.client.post("/v1/scans", json=body, headers=KEY)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["consent.basis"]


async def test_scans_need_a_valid_api_key_and_without_one_publish_nothing(ingest: Ingest):
    body = batch(f"show-{uuid.uuid4().hex[:6]}", [scan("D1")])
    async with nothing_published(ingest):
        assert (await ingest.client.post("/v1/scans", json=body)).status_code == 401
        resp = await ingest.client.post("/v1/scans", json=body, headers={"authorization": "Bearer wrong"})
        wrong_header = await ingest.client.post("/v1/scans", json=body, headers={"x-api-key": "wrong"})
        privacy_key = await ingest.client.post(
            "/v1/scans", json=body, headers={"authorization": "Bearer dev-privacy-key"}
        )
    assert resp.status_code == wrong_header.status_code == privacy_key.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert (
        await ingest.client.post("/v1/scans", json=body, headers={"x-api-key": "dev-scanner-key"})
    ).status_code == 202


async def test_a_batch_over_1000_scans_or_malformed_is_refused_naming_the_field(ingest: Ingest):
    resp = await ingest.client.post("/v1/scans", json=batch("s", [scan(f"E{i}") for i in range(1001)]), headers=KEY)
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"field": "scans", "problem": "at most 1000 scans per batch"}]
    resp = await ingest.client.post("/v1/scans", json={"scans": []}, headers=KEY)
    assert {e["field"] for e in resp.json()["errors"]} == {"device_id", "show_id", "booth", "scans"}
    async with nothing_published(ingest):
        resp = await ingest.client.post("/v1/scans", content=b"a,b", headers=KEY | {"content-type": "text/csv"})
        big = await ingest.client.post("/v1/scans", content=b"{" + b" " * 4_000_001 + b"}",
                                       headers=KEY | {"content-type": "application/json"})  # fmt: skip
    assert resp.status_code == 415 and big.status_code == 413
