"""``POST /v1/privacy/erasure``: a CRM or a DSR tool asks for a person's erasure (privacy keys
only), bad input is refused naming the field, and the person's spooled records go first."""

from __future__ import annotations

from pathlib import Path

from leadpipe.devstack.processes import free_port
from leadpipe.runtime.keystore import RedisKeyStore
from schemas.codec import Record
from schemas.identity import erasure_hashes, identity_key
from schemas.pii import Keyring, use_keyring
from services.ingest.adapters.spool import SqliteSpool
from tests.integration.ingest.conftest import Ingest, nothing_published, read_events
from tests.integration.ingest.test_forms import GOOD

PRIVACY = {"authorization": "Bearer dev-privacy-key"}


async def test_an_erasure_request_without_a_privacy_key_is_refused_401_even_with_a_scanner_key(ingest: Ingest):
    for headers in ({}, {"authorization": "Bearer dev-scanner-key"}, {"authorization": "Bearer nope"}):
        async with nothing_published(ingest):
            resp = await ingest.client.post("/v1/privacy/erasure", json={"email": "dana@example.com"}, headers=headers)
        assert resp.status_code == 401, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_a_bad_erasure_request_is_refused_422_naming_each_field(ingest: Ingest):
    resp = await ingest.client.post("/v1/privacy/erasure", json={"email": "dana", "lead_ids": "ld_1"}, headers=PRIVACY)
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in resp.json()["errors"]] == ["email", "lead_ids"]
    empty = await ingest.client.post("/v1/privacy/erasure", json={}, headers=PRIVACY)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "email"
    broken = await ingest.client.post(
        "/v1/privacy/erasure", content=b"{", headers=PRIVACY | {"content-type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "body"
    async with nothing_published(ingest):
        form = await ingest.client.post("/v1/privacy/erasure", data={"email": "d@e.com"}, headers=PRIVACY)
        big = await ingest.client.post("/v1/privacy/erasure", json={"email": "d@e.com", "pad": "x" * 16_000},
                                       headers=PRIVACY)  # fmt: skip
    assert form.status_code == 415 and big.status_code == 413


async def test_an_accepted_erasure_request_is_published_with_keyed_hashes_of_the_identifiers(ingest: Ingest):
    resp = await ingest.client.post(
        "/v1/privacy/erasure", json={"email": "Dana@Example.com", "phone": "+1 415 555 0100"}, headers=PRIVACY
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    secret = ingest.settings.leadpipe_privacy_secret
    hashes = erasure_hashes(secret, email="dana@example.com", phone="+14155550100")
    assert body["subject_hash"] == hashes[0] and body["spool_records_erased"] == 0
    [event] = await read_events(
        ingest.settings.kafka_bootstrap_servers, "person.erasure_requested.v1", {body["event_id"]}
    )
    assert event.data.identifier_hashes == hashes and event.data.requested_by == "api:dev-dsr"
    assert event.subject == hashes[0]
    receipts = await read_events(ingest.settings.kafka_bootstrap_servers, "person.erased.v1", None)
    [mine] = [r.data for r in receipts if r.data.request_id == body["request_id"]]
    assert mine.service == "ingest" and mine.items[0].count == 0
    assert b"dana" not in mine.model_dump_json().lower().encode()


def test_erasing_from_the_spool_removes_only_the_persons_records(tmp_path: Path):
    spool = SqliteSpool(tmp_path / "spool.db")
    dana, sam = identity_key(email="dana@example.com").encode(), identity_key(email="sam@example.com").encode()
    phone_only = identity_key(phone="+14155550100").encode()
    rows = [("lead.captured.v1", Record(key=k, value=b"{}", headers=[]), f"e{i}", False)
            for i, k in enumerate((dana, sam, phone_only, dana))]  # fmt: skip
    spool.append(rows)
    assert spool.erase_keys([dana, phone_only]) == 3
    assert [r.record.key for r in spool.head(10)] == [sam] and spool.depth == 1
    assert spool.erase_keys([]) == 0
    spool.close()


async def test_with_the_data_key_store_unreachable_a_form_and_an_erasure_get_503_and_nothing_is_sent(ingest: Ingest):
    # a key store on a port nothing listens on: personal fields cannot be sealed, so nothing goes
    dead = Keyring(RedisKeyStore.from_url(f"redis://127.0.0.1:{free_port()}/1"), "s")
    previous = use_keyring(dead)
    try:
        erase = await ingest.client.post("/v1/privacy/erasure", json={"email": "kim@example.com"}, headers=PRIVACY)
        assert erase.status_code == 503 and erase.headers["retry-after"] == "5"
        assert "key store" in erase.json()["detail"]
        form = await ingest.client.post("/v1/forms/demo", json=GOOD | {"email": "kim@example.com"})
        assert form.status_code == 503, form.text
    finally:
        use_keyring(previous)
