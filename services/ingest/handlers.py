"""HTTP routes: request in -> domain call -> events out (published or spooled) -> response."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import Payload
from schemas.codec import encode
from schemas.envelope import new_event
from schemas.identity import identity_key
from schemas.links import InvalidToken, verify
from schemas.person_erased.v1 import ErasedItem, PersonErased
from schemas.person_erasure_requested.v1 import erasure_request
from services.ingest.adapters.publisher import Outcome
from services.ingest.config import IngestSettings, hash_api_key
from services.ingest.domain.erasure import parse_erasure, spool_keys
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.domain.forms import FormConfig, Submitter, build_capture, is_spam
from services.ingest.domain.scans import build_captures, parse_batch
from services.ingest.domain.webhooks import BadSignature, parse_events, unsubscribe_engagement, verify_signature
from services.ingest.web import BodyTooLarge, json_response, media_type, page, problem, read_body

if TYPE_CHECKING:
    from services.ingest.app import IngestDeps

log = logging.getLogger(__name__)

SOURCE = "/leadpipe/ingest"
BROWSER_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class SpoolUnavailable(Exception):
    """Neither the broker nor the local spool took the events."""


def build_router(settings: IngestSettings, deps: IngestDeps) -> APIRouter:
    router = APIRouter()
    metrics = deps.metrics
    store = deps.store
    key_hashes = dict(settings.ingest_api_keys)

    async def publish(items: list[tuple[Payload, str, str]]) -> tuple[list[str], list[Outcome]]:
        """(payload, record key, source suffix) -> event ids and outcomes."""
        events = [new_event(p, source=f"{SOURCE}/{src}", subject=key) for p, key, src in items]
        records = [(e.data.topic(), encode(e, max_bytes=settings.kafka_max_record_bytes), e.id) for e in events]
        try:
            outcomes = await deps.publisher.publish(records)
        except Exception as exc:
            log.exception("neither the broker nor the spool took %d events", len(records))
            raise SpoolUnavailable(str(exc)) from exc
        for e, (_, _, src) in zip(events, items, strict=True):
            metrics.published.labels(e.data.EVENT_TYPE, src.split("/", 1)[0]).inc()
        return [e.id for e in events], outcomes

    def reject(reason: str) -> None:
        metrics.rejected.labels(reason).inc()

    def client_ip(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    # ---- web forms -------------------------------------------------------------------
    def cors(config: FormConfig, origin: str | None) -> dict[str, str]:
        if origin and config.origin_allowed(origin):
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    @router.options("/v1/forms/{form_id}")
    async def form_preflight(form_id: str, request: Request) -> Response:
        config = deps.forms.get(form_id)
        origin = request.headers.get("origin")
        if config is None:
            return problem(404, "Unknown form", f"no form {form_id!r}")
        if not origin or not config.origin_allowed(origin):
            return problem(403, "Origin not allowed", f"origin {origin!r} may not post to form {form_id!r}")
        return Response(
            status_code=204,
            headers=cors(config, origin)
            | {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )

    @router.post("/v1/forms/{form_id}")
    async def post_form(form_id: str, request: Request) -> Response:
        config = deps.forms.get(form_id)
        if config is None:
            reject("unknown_form")
            return problem(404, "Unknown form", f"no form {form_id!r}")
        origin = request.headers.get("origin")
        same_origin = origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
        if not same_origin and not config.origin_allowed(origin):
            reject("origin")
            return problem(403, "Origin not allowed", f"origin {origin!r} may not post to form {form_id!r}")
        ctype = media_type(request)
        browser = ctype in BROWSER_TYPES
        if not browser and ctype != "application/json":
            reject("media_type")
            return problem(
                415,
                "Unsupported media type",
                "send application/json or application/x-www-form-urlencoded",
                headers={"Accept-Post": "application/json, application/x-www-form-urlencoded"},
            )
        try:
            body = await read_body(request, settings.ingest_max_form_bytes)
        except BodyTooLarge as exc:
            reject("too_large")
            return problem(413, "Request too large", str(exc))
        values: dict[str, Any]
        if browser:
            values = await _form_values(request, body, ctype)
        else:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                reject("invalid")
                return problem(422, "Invalid JSON", str(exc), errors=[FieldProblem("body", "is not valid JSON")])
            if not isinstance(parsed, dict):
                reject("invalid")
                return problem(422, "Invalid body", errors=[FieldProblem("body", "must be a JSON object")])
            values = parsed
        headers = cors(config, origin)
        ip = client_ip(request)
        try:
            allowed = await store.hit("ip", ip, config.rate_limits.per_ip_per_minute) and await store.hit(
                "form", config.id, config.rate_limits.per_form_per_minute
            )
        except Exception as exc:  # Redis down: let the lead in rather than lose it
            log.warning("rate limit check failed, allowing: %s", exc)
            allowed = True
        if not allowed:
            reject("rate_limited")
            msg = "Too many submissions; please try again in a minute."
            if browser:
                return page(
                    "form.html",
                    429,
                    {"Retry-After": "60"},
                    title=config.title,
                    form=config,
                    values=values,
                    message=msg,
                    problems=[],
                )
            return problem(429, "Too many requests", msg, headers=headers | {"Retry-After": "60"})
        if is_spam(config, values):
            reject("honeypot")
            # Answer as if accepted: a bot must not learn which field gave it away.
            if browser:
                return RedirectResponse(config.redirect_url or "/thanks", status_code=303)
            return json_response(202, {"status": "accepted"}, headers)
        submitter = Submitter(ip, request.headers.get("user-agent"), request.headers.get("referer"),
                              request.headers.get("accept-language"))  # fmt: skip
        capture_id = str(uuid.uuid4())
        try:
            capture = build_capture(config, values, capture_id=capture_id, now=deps.clock(), submitter=submitter)
        except InvalidInput as exc:
            reject("invalid")
            if browser:
                return page(
                    "form.html",
                    422,
                    title=config.title,
                    form=config,
                    values=_flat(values),
                    message="Please correct the fields below.",
                    problems=exc.problems,
                )
            return problem(422, "Invalid form submission", str(exc), errors=exc.problems, headers=headers)
        key = identity_key(
            email=capture.identity.email, phone=capture.identity.phone, default_region=config.default_region
        )
        try:
            (event_id,), (outcome,) = await publish([(capture, key, f"forms/{config.id}")])
        except SpoolUnavailable:
            return problem(503, "Temporarily unavailable", "please retry", headers=headers | {"Retry-After": "5"})
        if browser:
            return RedirectResponse(config.redirect_url or "/thanks", status_code=303)
        return json_response(
            202,
            {"status": "accepted", "event_id": event_id, "capture_id": capture_id, "delivery": outcome.value},
            headers,
        )

    # ---- booth scans -----------------------------------------------------------------
    def scanner_name(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not key:
            return None
        digest = hash_api_key(key)
        for name, stored in key_hashes.items():
            if hmac.compare_digest(digest, stored):
                return name
        return None

    @router.post("/v1/scans")
    async def post_scans(request: Request) -> Response:
        scanner = scanner_name(request)
        if scanner is None:
            reject("unauthorized")
            return problem(
                401,
                "Unauthorized",
                "a valid API key is required (Authorization: Bearer KEY)",
                headers={"WWW-Authenticate": 'Bearer realm="leadpipe-scans"'},
            )
        if media_type(request) != "application/json":
            reject("media_type")
            return problem(415, "Unsupported media type", "send application/json")
        try:
            body = await read_body(request, settings.ingest_max_scan_bytes)
        except BodyTooLarge as exc:
            reject("too_large")
            return problem(413, "Request too large", str(exc))
        try:
            batch = parse_batch(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            reject("invalid")
            return problem(422, "Invalid JSON", str(exc), errors=[FieldProblem("body", "is not valid JSON")])
        except InvalidInput as exc:
            reject("invalid")
            return problem(422, "Invalid scan batch", str(exc), errors=exc.problems)
        idem = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(body).hexdigest()
        if idem:
            if len(idem) > 200:
                return problem(
                    422,
                    "Invalid Idempotency-Key",
                    errors=[FieldProblem("Idempotency-Key", "longer than 200 characters")],
                )
            stored = await store.begin_idempotent(scanner, idem, fingerprint, settings.ingest_idempotency_ttl_s)
            if stored is not None:
                if stored.get("fingerprint") != fingerprint:
                    return problem(
                        422,
                        "Idempotency-Key reused",
                        "this key was used for a different batch",
                        errors=[FieldProblem("Idempotency-Key", "already used with another body")],
                    )
                if stored.get("state") != "done":
                    return problem(
                        409,
                        "Batch in progress",
                        "a request with this Idempotency-Key is still running",
                        headers={"Retry-After": "1"},
                    )
                reject("idempotent_replay")
                return json_response(int(stored["status"]), stored["body"], {"Idempotent-Replayed": "true"})
        batch_id = idem or str(uuid.uuid4())
        try:
            status, result = await _accept_batch(batch, batch_id)
        except SpoolUnavailable:
            if idem:
                await store.abandon_idempotent(scanner, idem)
            return problem(503, "Temporarily unavailable", "please retry", headers={"Retry-After": "5"})
        except Exception:
            if idem:
                await store.abandon_idempotent(scanner, idem)
            raise
        if idem:
            await store.finish_idempotent(scanner, idem, fingerprint, status, result, settings.ingest_idempotency_ttl_s)
        return json_response(status, result)

    async def _accept_batch(batch: Any, batch_id: str) -> tuple[int, dict[str, Any]]:
        good, bad = build_captures(batch, batch_id=batch_id)
        results: dict[int, dict[str, Any]] = {}
        for r in bad:
            reject("invalid_scan")
            results[r.index] = {
                "index": r.index,
                "scan_id": r.scan_id,
                "status": "rejected",
                "errors": [{"field": p.field, "problem": p.problem} for p in r.problems],
            }
        seen: set[str] = set()
        fresh = []
        for g in good:
            if g.scan_id in seen:
                results[g.index] = {"index": g.index, "scan_id": g.scan_id, "status": "duplicate"}
            else:
                seen.add(g.scan_id)
                fresh.append(g)
        claims = await store.claim_scans(batch.show_id, [g.scan_id for g in fresh], settings.ingest_scan_dedupe_ttl_s)
        new = [g for g, first in zip(fresh, claims, strict=True) if first]
        for g, first in zip(fresh, claims, strict=True):
            if not first:
                results[g.index] = {"index": g.index, "scan_id": g.scan_id, "status": "duplicate"}
        try:
            ids, outcomes = await publish([(g.capture, g.key, f"scans/{batch.show_id}") for g in new])
        except SpoolUnavailable:
            await store.release_scans(batch.show_id, [g.scan_id for g in new])
            raise
        for g, eid, outcome in zip(new, ids, outcomes, strict=True):
            results[g.index] = {
                "index": g.index,
                "scan_id": g.scan_id,
                "status": "accepted",
                "event_id": eid,
                "delivery": outcome.value,
            }
        ordered = [results[i] for i in sorted(results)]
        counts = {s: sum(1 for r in ordered if r["status"] == s) for s in ("accepted", "duplicate", "rejected")}
        status = 422 if counts["rejected"] == len(ordered) else 202
        return status, {"batch_id": batch_id, **counts, "results": ordered}

    # ---- engagement webhooks -----------------------------------------------------------
    @router.post("/v1/webhooks/{provider}")
    async def post_webhook(provider: str, request: Request) -> Response:
        secret = settings.ingest_webhook_secrets.get(provider)
        if secret is None:
            reject("unknown_provider")
            return problem(404, "Unknown provider", f"no webhook provider {provider!r}")
        if media_type(request) != "application/json":
            reject("media_type")
            return problem(415, "Unsupported media type", "send application/json")
        try:
            body = await read_body(request, settings.ingest_max_webhook_bytes)
        except BodyTooLarge as exc:
            reject("too_large")
            return problem(413, "Request too large", str(exc))
        signature = request.headers.get("x-leadpipe-signature")
        try:
            verify_signature(
                secret,
                timestamp=request.headers.get("x-leadpipe-timestamp"),
                signature=signature,
                body=body,
                now=time.time(),
                window_s=settings.ingest_webhook_window_s,
            )
        except BadSignature as exc:
            reject("bad_signature")
            return problem(401, "Invalid signature", exc.reason)
        guard = f"{provider}:{hashlib.sha256((signature or '').encode()).hexdigest()}"
        if await store.first_use("whsig", guard, int(settings.ingest_webhook_window_s * 2)) is not None:
            reject("replayed")
            return problem(401, "Invalid signature", "this signed request was already received (replay)")
        try:
            engagements = parse_events(provider, orjson.loads(body))
            ids, _ = await publish([(e.payload, e.key, f"webhooks/{provider}") for e in engagements])
        except orjson.JSONDecodeError as exc:
            reject("invalid")
            return problem(422, "Invalid JSON", str(exc), errors=[FieldProblem("body", "is not valid JSON")])
        except InvalidInput as exc:
            reject("invalid")
            return problem(422, "Invalid webhook events", str(exc), errors=exc.problems)
        except SpoolUnavailable:
            await store.redis.delete(f"ingest:whsig:{guard}")
            return problem(503, "Temporarily unavailable", "please retry", headers={"Retry-After": "5"})
        return json_response(202, {"status": "accepted", "event_ids": ids})

    # ---- privacy: erasure requests (a CRM or a DSR tool) -------------------------------------
    privacy_keys = dict(settings.ingest_privacy_api_keys)

    def privacy_caller(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            return None
        digest = hash_api_key(key)
        return next((name for name, stored in privacy_keys.items() if hmac.compare_digest(digest, stored)), None)

    @router.post("/v1/privacy/erasure")
    async def post_erasure(request: Request) -> Response:
        caller = privacy_caller(request)
        if caller is None:
            reject("unauthorized")
            return problem(
                401,
                "Unauthorized",
                "a valid privacy API key is required (Authorization: Bearer KEY)",
                headers={"WWW-Authenticate": 'Bearer realm="leadpipe-privacy"'},
            )
        if media_type(request) != "application/json":
            reject("media_type")
            return problem(415, "Unsupported media type", "send application/json")
        try:
            body = await read_body(request, 16_000)
            wanted = parse_erasure(orjson.loads(body))
        except BodyTooLarge as exc:
            reject("too_large")
            return problem(413, "Request too large", str(exc))
        except orjson.JSONDecodeError as exc:
            reject("invalid")
            return problem(422, "Invalid JSON", str(exc), errors=[FieldProblem("body", "is not valid JSON")])
        except InvalidInput as exc:
            reject("invalid")
            return problem(422, "Invalid erasure request", str(exc), errors=exc.problems)
        # The spool first: a record still waiting for the broker would otherwise reach scoring
        # after the request and bring the person back.
        spooled = await deps.publisher.erase_spooled([k.encode() for k in spool_keys(wanted.email, wanted.phone)])
        req = erasure_request(
            settings.leadpipe_privacy_secret,
            request_id=str(uuid.uuid4()),
            requested_at=datetime.now(UTC),
            requested_by=f"api:{caller}",
            email=wanted.email,
            phone=wanted.phone,
            lead_ids=wanted.lead_ids,
        )
        receipt = PersonErased(
            request_id=req.request_id,
            subject_hash=req.subject_hash,
            service="ingest",
            erased_at=datetime.now(UTC),
            items=[ErasedItem(store="sqlite:ingest spool (this replica)", action="deleted", count=spooled)],
            remaining=["the spools of other ingest replicas", "lead.captured.v1 / lead.engagement.v1: until retention"],
        )
        try:
            ids, _ = await publish([(req, req.subject_hash, "privacy/erasure"),
                                    (receipt, req.subject_hash, "privacy/erasure")])  # fmt: skip
        except SpoolUnavailable:
            return problem(503, "Temporarily unavailable", "please retry", headers={"Retry-After": "5"})
        log.info("erasure requested", extra={"request_id": req.request_id, "caller": caller, "spool_rows": spooled})
        return json_response(
            202,
            {
                "status": "accepted",
                "request_id": req.request_id,
                "event_id": ids[0],
                "subject_hash": req.subject_hash,
                "spool_records_erased": spooled,
            },
        )

    # ---- rep links -----------------------------------------------------------------------
    def token_page(exc: InvalidToken) -> Response:
        reject("bad_token")
        if exc.reason == "expired":
            return page("message.html", 410, title="Link expired", message="This link has expired.")
        return page("message.html", 403, title="Link not valid", message="This link is not valid.")

    @router.get("/v1/assignments/{token}/{action}")
    async def assignment(token: str, action: str) -> Response:
        if action not in ("accept", "decline"):
            return page("message.html", 404, title="Not found", message="Use the accept or decline link.")
        try:
            claims = verify(settings.leadpipe_link_secret, token, "assignment")
        except InvalidToken as exc:
            return token_page(exc)
        response = "accepted" if action == "accept" else "declined"
        aid, lead_id = str(claims["aid"]), str(claims["lid"])
        earlier = await store.first_use("assignment", aid, 30 * 86400, response)
        if earlier is not None:
            return page(
                "message.html",
                title="Already answered",
                message=f"You already {earlier} this lead; your first answer stands.",
            )
        payload = AssignmentResponse(
            assignment_id=aid,
            lead_id=lead_id,
            rep_id=str(claims["rid"]),
            response=response,
            responded_at=deps.clock(),
        )
        try:
            await publish([(payload, lead_id, "assignments")])
        except SpoolUnavailable:
            await store.redis.delete(f"ingest:assignment:{aid}")
            return page("message.html", 503, title="Try again", message="We could not record your answer; retry.")
        verb = "accepted" if response == "accepted" else "declined"
        return page("message.html", title=f"Lead {verb}", message=f"Thanks: you {verb} this lead.")

    @router.get("/v1/unsubscribe/{token}")
    async def unsubscribe_page(token: str, request: Request) -> Response:
        try:
            verify(settings.leadpipe_link_secret, token, "unsubscribe")
        except InvalidToken as exc:
            return token_page(exc)
        # GET only confirms: mail scanners prefetch links, so only a POST unsubscribes (RFC 8058).
        return page(
            "message.html",
            title="Unsubscribe",
            message="Stop all messages to this address?",
            action=str(request.url.path),
            button="Unsubscribe",
        )

    @router.post("/v1/unsubscribe/{token}")
    async def unsubscribe(token: str) -> Response:
        try:
            claims = verify(settings.leadpipe_link_secret, token, "unsubscribe")
        except InvalidToken as exc:
            return token_page(exc)
        engagement = unsubscribe_engagement(claims, now=deps.clock(), method="one-click")
        if await store.first_use("unsubscribe", engagement.payload.engagement_id, 365 * 86400) is None:
            try:
                await publish([(engagement.payload, engagement.key, "unsubscribe")])
            except SpoolUnavailable:
                await store.redis.delete(f"ingest:unsubscribe:{engagement.payload.engagement_id}")
                return page("message.html", 503, title="Try again", message="We could not record this; retry.")
        return page("message.html", title="Unsubscribed", message="You will not receive further messages here.")

    # ---- demo pages ------------------------------------------------------------------------
    @router.get("/")
    async def landing() -> Response:
        config = deps.forms.get("demo") or next(iter(deps.forms.values()))
        return page("form.html", title=config.title, form=config, values={}, message=None, problems=[])

    @router.get("/forms/{form_id}")
    async def form_page(form_id: str) -> Response:
        config = deps.forms.get(form_id)
        if config is None:
            return page("message.html", 404, title="Not found", message="No such form.")
        return page("form.html", title=config.title, form=config, values={}, message=None, problems=[])

    @router.get("/thanks")
    async def thanks() -> Response:
        return page("message.html", title="Thank you", message="Thanks! We will be in touch shortly.")

    return router


async def _form_values(request: Request, body: bytes, ctype: str) -> dict[str, Any]:
    if ctype == "multipart/form-data":
        form = await request.form()
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    else:
        pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    values: dict[str, Any] = {}
    for k, v in pairs:
        if k in values:
            prev = values[k]
            values[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            values[k] = v
    return values


def _flat(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) and v else str(v)) for k, v in values.items()}
