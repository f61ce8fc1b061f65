"""Engagement webhooks (signed), rep accept/decline links and one-click unsubscribe."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
from prometheus_client import CollectorRegistry

from leadpipe.devstack.processes import free_port
from schemas.base import EngagementKind
from schemas.identity import identity_key
from schemas.links import assignment_token, sign, unsubscribe_token
from services.ingest.app import create_app
from services.ingest.bootstrap import build_deps
from services.ingest.config import IngestSettings
from services.ingest.domain.webhooks import sign as sign_webhook
from tests.integration.ingest.conftest import Ingest, nothing_published, read_all, read_events

SECRET = "dev-webhook-secret"


def signed(body: dict, *, ts: int | None = None, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    ts = ts or int(time.time())
    return raw, {
        "content-type": "application/json",
        "x-leadpipe-timestamp": str(ts),
        "x-leadpipe-signature": sign_webhook(secret, ts, raw),
    }


async def test_a_signed_webhook_becomes_engagement_events(ingest: Ingest):
    raw, headers = signed(
        {
            "events": [
                {
                    "id": uuid.uuid4().hex,
                    "kind": "clicked",
                    "occurred_at": "2026-05-01T10:00:00Z",
                    "email": "Lee@Example.com",
                    "url": "https://x.example/p",
                },
                {
                    "id": uuid.uuid4().hex,
                    "kind": "bounced",
                    "occurred_at": "2026-05-01T10:01:00Z",
                    "email": "lee@example.com",
                    "bounce_type": "hard",
                },
            ]
        }
    )
    resp = await ingest.client.post("/v1/webhooks/demo", content=raw, headers=headers)
    assert resp.status_code == 202, resp.text
    events = await read_events(
        ingest.settings.kafka_bootstrap_servers, "lead.engagement.v1", set(resp.json()["event_ids"])
    )
    assert sorted(e.data.kind for e in events) == [EngagementKind.EMAIL_BOUNCED, EngagementKind.EMAIL_CLICKED]
    assert {e.subject for e in events} == {identity_key(email="lee@example.com")}


async def test_forged_stale_and_replayed_webhooks_get_401(ingest: Ingest):
    event = {"id": uuid.uuid4().hex, "kind": "opened", "occurred_at": "2026-05-01T10:00:00Z", "email": "a@example.com"}
    async with nothing_published(ingest):
        raw, headers = signed(event, secret="not-the-secret")
        assert (await ingest.client.post("/v1/webhooks/demo", content=raw, headers=headers)).status_code == 401
        raw, headers = signed(event, ts=int(time.time()) - 3600)
        resp = await ingest.client.post("/v1/webhooks/demo", content=raw, headers=headers)
        assert resp.status_code == 401 and "window" in resp.json()["detail"]
        raw, headers = signed(event)
        tampered = raw.replace(b"opened", b"replied")
        assert (await ingest.client.post("/v1/webhooks/demo", content=tampered, headers=headers)).status_code == 401
    assert (await ingest.client.post("/v1/webhooks/demo", content=raw, headers=headers)).status_code == 202
    async with nothing_published(ingest):
        replay = await ingest.client.post("/v1/webhooks/demo", content=raw, headers=headers)
    assert replay.status_code == 401 and "replay" in replay.json()["detail"]
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "bad_signature"}) == 3
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "replayed"}) == 1


async def test_a_webhook_with_bad_events_names_each_field(ingest: Ingest):
    raw, headers = signed(
        {
            "events": [
                {"id": "1", "kind": "waved", "occurred_at": "2026-05-01T10:00:00Z", "email": "a@example.com"},
                {"id": "2", "kind": "opened"},
            ]
        }
    )
    resp = await ingest.client.post("/v1/webhooks/demo", content=raw, headers=headers)
    assert resp.status_code == 422
    fields = [e["field"] for e in resp.json()["errors"]]
    assert set(fields) == {"events[0].kind", "events[1].occurred_at"}
    assert (await ingest.client.post("/v1/webhooks/nobody", content=raw, headers=headers)).status_code == 404


async def test_a_rep_accepts_by_link_once_and_the_response_is_keyed_by_lead(ingest: Ingest):
    aid = uuid.uuid4().hex
    token = assignment_token("dev-link-secret", assignment_id=aid, lead_id="lead-42", rep_id="rep-7")
    resp = await ingest.client.get(f"/v1/assignments/{token}/accept")
    assert resp.status_code == 200 and "you accepted this lead" in resp.text
    again = await ingest.client.get(f"/v1/assignments/{token}/decline")
    assert "already accepted" in again.text
    assert (
        ingest.metric(
            "leadpipe_ingest_events_published_total", {"type": "assignment.response", "source": "assignments"}
        )
        == 1
    )
    [event] = [
        e
        for e in await read_all(ingest.settings.kafka_bootstrap_servers, "assignment.response.v1")
        if e.data.assignment_id == aid
    ]
    assert event.subject == "lead-42" and event.data.response == "accepted" and event.data.rep_id == "rep-7"


async def test_forged_or_expired_links_show_an_error_page_and_publish_nothing(ingest: Ingest):
    async with nothing_published(ingest):
        forged = assignment_token("wrong-secret", assignment_id="a", lead_id="l", rep_id="r")
        assert (await ingest.client.get(f"/v1/assignments/{forged}/accept")).status_code == 403
        expired = sign("dev-link-secret", "assignment", {"aid": "a", "lid": "l", "rid": "r"}, ttl_s=-10)
        resp = await ingest.client.get(f"/v1/assignments/{expired}/accept")
        assert resp.status_code == 410 and "expired" in resp.text
        unsub = unsubscribe_token("dev-link-secret", lead_id="l", channel="email", address="a@example.com")
        assert (await ingest.client.get(f"/v1/assignments/{unsub}/accept")).status_code == 403  # wrong kind
        forged_unsub = unsubscribe_token("wrong-secret", lead_id="l", channel="email", address="a@example.com")
        assert (await ingest.client.post(f"/v1/unsubscribe/{forged_unsub}")).status_code == 403
    assert ingest.metric("leadpipe_ingest_rejected_total", {"reason": "bad_token"}) == 4


async def test_one_click_unsubscribe_publishes_an_unsubscribed_engagement_once(ingest: Ingest):
    lead = uuid.uuid4().hex
    token = unsubscribe_token("dev-link-secret", lead_id=lead, channel="email", address="Quit@Example.com")
    page = await ingest.client.get(f"/v1/unsubscribe/{token}")
    assert page.status_code == 200 and "<form" in page.text  # GET only confirms
    assert (
        ingest.metric("leadpipe_ingest_events_published_total", {"type": "lead.engagement", "source": "unsubscribe"})
        == 0
    )
    for _ in range(2):
        resp = await ingest.client.post(f"/v1/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert resp.status_code == 200 and "Unsubscribed" in resp.text
    assert (
        ingest.metric("leadpipe_ingest_events_published_total", {"type": "lead.engagement", "source": "unsubscribe"})
        == 1
    )
    [event] = [
        e
        for e in await read_all(ingest.settings.kafka_bootstrap_servers, "lead.engagement.v1")
        if e.data.identity.external_id == lead
    ]
    assert event.data.kind == EngagementKind.UNSUBSCRIBED and event.subject == identity_key(email="quit@example.com")


async def test_a_webhook_while_redis_is_down_gets_503_with_retry_after(ingest_settings: IngestSettings):
    """Found by the chaos suite: a webhook arriving while Redis restarted got a bare 500 (the
    replay guard's write raised). It now gets a 503 the provider retries."""
    settings = ingest_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(settings, build_deps(settings, CollectorRegistry()))
    raw, headers = signed({"id": uuid.uuid4().hex, "kind": "opened", "occurred_at": "2026-05-01T10:00:00Z",
                           "email": "lee@example.com"})  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            resp = await client.post("/v1/webhooks/demo", content=raw, headers=headers)
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "5"
    assert resp.json()["title"] == "Temporarily unavailable"


async def test_a_webhook_of_the_wrong_media_type_or_too_large_publishes_nothing(ingest: Ingest):
    raw, headers = signed({"id": uuid.uuid4().hex, "kind": "opened", "occurred_at": "2026-05-01T10:00:00Z",
                           "email": "a@example.com"})  # fmt: skip
    async with nothing_published(ingest):
        form = await ingest.client.post(
            "/v1/webhooks/demo", content=raw, headers=headers | {"content-type": "text/plain"}
        )
        big = await ingest.client.post("/v1/webhooks/demo", content=raw + b" " * 1_000_001, headers=headers)
    assert form.status_code == 415 and big.status_code == 413
