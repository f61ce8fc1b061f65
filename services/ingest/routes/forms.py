"""Capture source: web forms (``POST /v1/forms/{form_id}``), JSON from a form builder's
backend or a browser's ``x-www-form-urlencoded`` post, each form configured in ``forms/<id>.yaml``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.ingest import contract
from services.ingest.checks import Deps, LimitedBody, MediaType, Rejected, client_ip, get_deps
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.domain.forms import FormConfig, Submitter, capture_form, is_spam
from services.ingest.publishing import SpoolUnavailable, publish
from services.ingest.web import json_response, page, problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["web forms"])

BROWSER_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
form_media_type = MediaType(
    "application/json",
    *BROWSER_TYPES,
    hint="send application/json or application/x-www-form-urlencoded",
    accept_post="application/json, application/x-www-form-urlencoded",
)
form_body = LimitedBody(lambda s: s.ingest_max_form_bytes)


async def form_config(form_id: str, deps: Deps) -> FormConfig:
    config = deps.forms.get(form_id)
    if config is None:
        raise Rejected(404, "Unknown form", f"no form {form_id!r}", reason="unknown_form")
    return config


async def allowed_origin(request: Request, config: FormConfig) -> str | None:
    """The browser's origin, if the form lists it (or it is ours); none for a server's post."""
    origin = request.headers.get("origin")
    same_origin = origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
    if not same_origin and not config.origin_allowed(origin):
        raise Rejected(
            403, "Origin not allowed", f"origin {origin!r} may not post to form {config.id!r}", reason="origin"
        )
    return origin


@dataclass(frozen=True, slots=True)
class FormPost:
    """A post to a form that its checks let through."""

    config: FormConfig
    origin: str | None
    ctype: str
    body: bytes


async def checked_post(form_id: str, request: Request) -> FormPost:
    """The form's checks, in the order a post is refused: no such form (404), an origin it does
    not list (403), a media type it does not take (415), too large (413). One dependency calling
    them in turn: FastAPI resolves every dependency of a route on every request, and the route
    took about 240 µs of CPU per post with these five as dependencies of their own, about 180
    as one (in-process, store and publish faked: bench/results/issue13-round14/form_deps.py)."""
    deps = await get_deps(request)
    config = await form_config(form_id, deps)
    origin = await allowed_origin(request, config)
    ctype = await form_media_type(request)
    body = await form_body(request, deps)
    return FormPost(config, origin, ctype, body)


def cors(config: FormConfig, origin: str | None) -> dict[str, str]:
    if origin and config.origin_allowed(origin):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


@router.options(
    "/v1/forms/{form_id}",
    status_code=204,
    summary="CORS preflight of a form post",
    responses={204: {"description": "The origin may post"}, **contract.problems(403, 404)},
)
async def form_preflight(form_id: str, request: Request, deps: Deps) -> Response:
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


_FORM_BODY = {"schema": {"type": "object"}}  # replaced by the configured forms' schemas (contract.install)


@router.post(
    "/v1/forms/{form_id}",
    status_code=202,
    summary="Submit a web form",
    description="JSON (answered with JSON) or a browser's urlencoded post (answered with a redirect or the form "
    "page with each problem). A filled honeypot field is answered as if accepted and publishes nothing.",
    responses={
        202: contract.json("FormAccepted", "Accepted (published or spooled)"),
        303: {
            "description": "A browser's post: to the form's thank-you page",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **contract.problems(403, 404, 413),
        415: contract.problem(415, headers={"Accept-Post": {"schema": {"type": "string"}}}),
        422: contract.merge(contract.problem(422), contract.html("A browser's post: the form with each problem")),
        429: contract.merge(contract.problem(429), contract.html("A browser's post: the form, try again later")),
        503: contract.problem(503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": _FORM_BODY, "application/x-www-form-urlencoded": _FORM_BODY},
        }
    },
)
async def post_form(request: Request, deps: Deps, post: Annotated[FormPost, Depends(checked_post)]) -> Response:
    config, origin, ctype, body = post.config, post.origin, post.ctype, post.body
    browser = ctype in BROWSER_TYPES
    values = await _form_values(request, body, ctype) if browser else _json_object(body)
    headers = cors(config, origin)
    ip = client_ip(request)
    try:
        allowed = await deps.store.hit(
            [
                ("ip", ip, config.rate_limits.per_ip_per_minute),
                ("form", config.id, config.rate_limits.per_form_per_minute),
            ]
        )
    except Exception as exc:  # Redis down: let the lead in rather than lose it
        log.warning("rate limit check failed, allowing: %s", exc)
        allowed = True
    if not allowed:
        deps.metrics.rejected.labels("rate_limited").inc()
        msg = "Too many submissions; please try again in a minute."
        if browser:
            return page("form.html", 429, {"Retry-After": "60"}, title=config.title, form=config, values=values,
                        message=msg, problems=[])  # fmt: skip
        return problem(429, "Too many requests", msg, headers=headers | {"Retry-After": "60"})
    if is_spam(config, values):
        deps.metrics.rejected.labels("honeypot").inc()
        # Answer as if accepted: a bot must not learn which field gave it away.
        if browser:
            return RedirectResponse(config.redirect_url or "/thanks", status_code=303)
        return json_response(202, {"status": "accepted"}, headers)
    submitter = Submitter(ip, request.headers.get("user-agent"), request.headers.get("referer"),
                          request.headers.get("accept-language"))  # fmt: skip
    capture_id = str(uuid.uuid4())
    try:
        captured = capture_form(config, values, capture_id=capture_id, now=deps.clock(), submitter=submitter)
    except InvalidInput as exc:
        deps.metrics.rejected.labels("invalid").inc()
        if browser:
            return page("form.html", 422, title=config.title, form=config, values=_flat(values),
                        message="Please correct the fields below.", problems=exc.problems)  # fmt: skip
        raise Rejected(422, "Invalid form submission", str(exc), errors=exc.problems, headers=headers) from exc
    try:
        (event_id,), (outcome,) = await publish(deps, [captured], f"forms/{config.id}")
    except SpoolUnavailable:
        return problem(503, "Temporarily unavailable", "please retry", headers=headers | {"Retry-After": "5"})
    if browser:
        return RedirectResponse(config.redirect_url or "/thanks", status_code=303)
    return json_response(
        202,
        {"status": "accepted", "event_id": event_id, "capture_id": capture_id, "delivery": outcome.value},
        headers,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(422, "Invalid JSON", str(exc), reason="invalid",
                       errors=[FieldProblem("body", "is not valid JSON")]) from exc  # fmt: skip
    if not isinstance(parsed, dict):
        raise Rejected(422, "Invalid body", reason="invalid", errors=[FieldProblem("body", "must be a JSON object")])
    return parsed


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
