"""Engagement source: signed webhooks from email/SMS providers (``POST /v1/webhooks/{provider}``),
each event published as ``lead.engagement`` keyed by the person's email or phone."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header

from services.ingest import contract
from services.ingest.checks import Deps, LimitedBody, Rejected, json_only
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.domain.webhooks import BadSignature, parse_events, verify_signature
from services.ingest.publishing import SpoolUnavailable, publish
from services.ingest.web import json_response, problem

router = APIRouter(tags=["engagement webhooks"])

webhook_body = LimitedBody(lambda s: s.ingest_max_webhook_bytes)


async def provider_secret(provider: str, deps: Deps) -> str:
    secret = deps.settings.ingest_webhook_secrets.get(provider)
    if secret is None:
        raise Rejected(404, "Unknown provider", f"no webhook provider {provider!r}", reason="unknown_provider")
    return secret


@dataclass(frozen=True, slots=True)
class SignedPost:
    body: bytes
    #: The replay guard this post claimed (released if its events could not be published).
    guard: str


async def signed_post(
    provider: str,
    deps: Deps,
    secret: Annotated[str, Depends(provider_secret)],
    _: Annotated[str, Depends(json_only)],
    body: Annotated[bytes, Depends(webhook_body)],
    x_leadpipe_timestamp: Annotated[
        str | None, Header(description="Unix seconds when the provider signed the post (within 5 minutes of now).")
    ] = None,
    x_leadpipe_signature: Annotated[
        str | None,
        Header(
            description="`v1=` hex HMAC-SHA256 of `{timestamp}.{body}` under the provider's secret "
            "(several, comma-separated, while a secret rotates)."
        ),
    ] = None,
) -> SignedPost:
    """The body, if signed by the provider within the window and not seen before; else 401."""
    window_s = deps.settings.ingest_webhook_window_s
    try:
        verify_signature(secret, timestamp=x_leadpipe_timestamp, signature=x_leadpipe_signature, body=body,
                         now=time.time(), window_s=window_s)  # fmt: skip
    except BadSignature as exc:
        raise Rejected(401, "Invalid signature", exc.reason, reason="bad_signature") from exc
    guard = f"{provider}:{hashlib.sha256((x_leadpipe_signature or '').encode()).hexdigest()}"
    if await deps.store.first_use("whsig", guard, int(window_s * 2)) is not None:
        raise Rejected(401, "Invalid signature", "this signed request was already received (replay)",
                       reason="replayed")  # fmt: skip
    return SignedPost(body, guard)


@router.post(
    "/v1/webhooks/{provider}",
    status_code=202,
    summary="Post engagement events (signed)",
    responses={
        202: contract.json("WebhookAccepted", "Accepted: one engagement event per posted event"),
        **contract.problems(401, 404, 413, 415, 422, 503),
    },
    openapi_extra=contract.json_body("WebhookPost", "Engagement events; the post is signed (see the headers)."),
)
async def post_webhook(provider: str, deps: Deps, post: Annotated[SignedPost, Depends(signed_post)]) -> object:
    try:
        engagements = parse_events(provider, orjson.loads(post.body))
        ids, _ = await publish(deps, engagements, f"webhooks/{provider}")
    except orjson.JSONDecodeError as exc:
        raise Rejected(422, "Invalid JSON", str(exc), reason="invalid",
                       errors=[FieldProblem("body", "is not valid JSON")]) from exc  # fmt: skip
    except InvalidInput as exc:
        raise Rejected(422, "Invalid webhook events", str(exc), reason="invalid", errors=exc.problems) from exc
    except SpoolUnavailable:
        await deps.store.forget("whsig", post.guard)
        return problem(503, "Temporarily unavailable", "please retry", headers={"Retry-After": "5"})
    return json_response(202, {"status": "accepted", "event_ids": ids})
