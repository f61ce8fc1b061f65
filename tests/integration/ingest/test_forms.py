"""Web-form posts through the in-process app to the real broker and Redis."""

from __future__ import annotations

import pytest

from schemas.identity import identity_key
from schemas.lead_captured.v1 import LeadCaptured
from tests.integration.ingest.conftest import Ingest, clear_of_minute_end, nothing_published, read_events

GOOD = {
    "email": "Ada.Lovelace@Example.com",
    "first_name": "Ada",
    "company": "Analytical Engines",
    "seats": "40",
    "need": "replace spreadsheets",
    "marketing_consent": "yes",
}


async def test_a_json_form_post_is_published_with_consent_proof_and_keyed_by_identity(ingest: Ingest):
    resp = await ingest.client.post("/v1/forms/demo", json=GOOD, headers={"user-agent": "pytest-browser/1"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["delivery"] == "acked"
    [event] = await read_events(ingest.settings.kafka_bootstrap_servers, "lead.captured.v1", {body["event_id"]})
    assert isinstance(event.data, LeadCaptured)
    assert event.subject == identity_key(email="ada.lovelace@example.com")
    assert event.data.qualification.seats == 40
    assert event.data.consent.marketing is True
    assert event.data.consent.user_agent == "pytest-browser/1"
    assert event.data.consent.text_shown.startswith("Yes, leadpipe may email me")
    assert event.data.consent.ip.startswith("10.")
    assert ingest.metric("leadpipe_ingest_events_published_total", {"type": "lead.captured", "source": "forms"}) == 1


async def test_a_browser_post_is_redirected_to_the_thank_you_page(ingest: Ingest):
    resp = await ingest.client.post("/v1/forms/demo", data=GOOD | {"email": "grace@example.com"})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/thanks"
    assert ingest.metric("leadpipe_ingest_events_published_total", {"type": "lead.captured", "source": "forms"}) == 1


async def test_a_browser_post_with_bad_fields_gets_the_form_back_with_each_message(ingest: Ingest):
    resp = await ingest.client.post("/v1/forms/demo", data={"email": "not-an-email", "company": "X", "seats": "many"})
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("text/html")
    assert 'data-field="email"' in resp.text and "is not an email address" in resp.text
    assert 'data-field="first_name"' in resp.text and "is required" in resp.text
    assert "must be a whole number" in resp.text
    assert 'value="X"' in resp.text  # what was typed is kept
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "invalid"}) == 1


async def test_an_api_post_with_bad_fields_gets_problem_json_naming_each_field(ingest: Ingest):
    resp = await ingest.client.post("/v1/forms/demo", json={"email": "nope", "company": "X"})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    errors = {e["field"]: e["problem"] for e in resp.json()["errors"]}
    assert errors == {"first_name": "is required", "email": "is not an email address"}


async def test_bad_input_gets_4xx_never_500_and_publishes_nothing(ingest: Ingest):
    c = ingest.client
    async with nothing_published(ingest):
        broken = await c.post("/v1/forms/demo", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 422
        assert (await c.post("/v1/forms/demo", json=[1, 2])).status_code == 422
        text = await c.post("/v1/forms/demo", content=b"x", headers={"content-type": "text/plain"})
        assert text.status_code == 415 and text.headers["accept-post"].startswith("application/json")
        big = {"first_name": "A", "email": "a@example.com", "need": "x" * 70_000}
        assert (await c.post("/v1/forms/demo", json=big)).status_code == 413
        assert (await c.post("/v1/forms/nope", json=GOOD)).status_code == 404
        too_long = GOOD | {"company": "c" * 600}
        resp = await c.post("/v1/forms/demo", json=too_long)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "company"


async def test_a_post_failing_several_checks_is_refused_for_the_first_form_origin_media_type_size(
    ingest: Ingest,
):
    c = ingest.client
    evil, text = {"origin": "https://evil.example"}, {"content-type": "text/plain"}
    big = b"x" * 70_000
    async with nothing_published(ingest):
        statuses = [
            (await c.post("/v1/forms/nope", content=big, headers=evil | text)).status_code,
            (await c.post("/v1/forms/demo", content=big, headers=evil | text)).status_code,
            (await c.post("/v1/forms/demo", content=big, headers=text)).status_code,
            (await c.post("/v1/forms/demo", content=big, headers={"content-type": "application/json"})).status_code,
        ]
    assert statuses == [404, 403, 415, 413]


async def test_a_filled_honeypot_looks_accepted_but_publishes_nothing(ingest: Ingest):
    async with nothing_published(ingest):
        resp = await ingest.client.post("/v1/forms/demo", data=GOOD | {"website": "http://spam.example"})
    assert resp.status_code == 303
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "honeypot"}) == 1
    assert ingest.metric("leadpipe_ingest_events_published_total", {"type": "lead.captured", "source": "forms"}) == 0


async def test_posts_over_the_per_ip_limit_get_429(ingest: Ingest):
    await clear_of_minute_end()  # 32 posts across a minute's end would be counted apart
    statuses = [(await ingest.client.post("/v1/forms/demo", json={"company": "X"})).status_code for _ in range(32)]
    assert statuses[:30] == [422] * 30
    assert statuses[30:] == [429, 429]
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "rate_limited"}) == 2


async def test_cors_allows_listed_origins_and_refuses_others(ingest: Ingest):
    ok = await ingest.client.options("/v1/forms/demo", headers={"origin": "http://localhost:8080"})
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == "http://localhost:8080"
    async with nothing_published(ingest):
        bad = await ingest.client.post("/v1/forms/demo", json=GOOD, headers={"origin": "https://evil.example"})
        browser = await ingest.client.post("/v1/forms/demo", data=GOOD, headers={"origin": "https://evil.example"})
    assert bad.status_code == 403 and "evil" in bad.json()["detail"]
    assert browser.status_code == 403
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "origin"}) == 2


async def test_metrics_and_health_are_served_on_the_same_app(ingest: Ingest):
    await ingest.client.post("/v1/forms/demo", json=GOOD | {"email": "m@example.com"})
    text = (await ingest.client.get("/metrics")).text
    assert 'leadpipe_http_requests_total{method="POST",route="/v1/forms/{form_id}",status="202"} 1.0' in text
    assert "leadpipe_ingest_spool_depth 0.0" in text
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    ready = (await ingest.client.get("/readyz")).json()
    assert ready["checks"] == {"redis": True, "broker": True, "spool": True}


async def test_the_nothing_published_check_sees_a_publish(ingest: Ingest):
    with pytest.raises(AssertionError, match="published"):
        async with nothing_published(ingest):
            assert (await ingest.client.post("/v1/forms/demo", json=GOOD)).status_code == 202


async def test_a_method_a_path_does_not_serve_gets_405_naming_every_method_it_does(ingest: Ingest):
    """Found by schemathesis: Starlette named only the first matching route's methods."""
    resp = await ingest.client.put("/v1/unsubscribe/some-token")
    assert resp.status_code == 405 and resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["allow"] == "GET, POST"
    assert (await ingest.client.delete("/v1/forms/demo")).headers["allow"] == "OPTIONS, POST"
