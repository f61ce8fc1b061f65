"""The ingest API's OpenAPI contract: the problem+json schema every refusal carries, the
response and request-body declarations of each route, and the per-deployment form schemas.

Routes read their bodies themselves (size-limited, by media type), so FastAPI cannot infer
their request bodies: each route declares its own here (``openapi_extra``), with the models
below registered as components by ``install``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from schemas.lead_captured.v1 import CaptureContext, Identity, Person, Qualification
from services.ingest.domain.erasure import EMAIL_PATTERN as ERASURE_EMAIL
from services.ingest.domain.erasure import MAX_LEAD_IDS
from services.ingest.domain.erasure import PHONE_PATTERN as ERASURE_PHONE
from services.ingest.domain.forms import _INT_FIELDS, _LIST_FIELDS, EMAIL_PATTERN, FormConfig
from services.ingest.domain.scans import Scan, ScanBatch
from services.ingest.domain.text import NONBLANK, WS
from services.ingest.domain.webhooks import WebhookEvent
from services.ingest.web import PROBLEM_JSON

REF = "#/components/schemas/{model}"


class FieldError(BaseModel):
    field: str = Field(description="The field, e.g. `email` or `scans[3].badge_id`.")
    problem: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """An RFC 9457 problem: every refusal of this API has this body."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="One entry per bad field.")


class FormAccepted(BaseModel):
    """A form post taken (published, or spooled until the broker is back: ``delivery``)."""

    status: Literal["accepted"]
    event_id: str | None = None
    capture_id: str | None = None
    delivery: Literal["acked", "spooled"] | None = None


class ScanResult(BaseModel):
    index: int
    scan_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    delivery: Literal["acked", "spooled"] | None = None
    errors: list[FieldError] | None = None


class ScanBatchResult(BaseModel):
    """Per-scan results in the batch's order (422 when every scan was rejected)."""

    batch_id: str
    accepted: int
    duplicate: int
    rejected: int
    results: list[ScanResult]


class WebhookPost(BaseModel):
    """A provider's post: ``{"events": [...]}`` (a single event object is accepted too)."""

    events: Annotated[list[WebhookEvent], Field(min_length=1)]


class WebhookAccepted(BaseModel):
    status: Literal["accepted"]
    event_ids: list[str]


class ErasureRequest(BaseModel):
    """Name the person by at least one of ``email``, ``phone`` or ``lead_ids``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
                {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
                {"required": ["lead_ids"], "properties": {"lead_ids": {"minItems": 1}}},
            ]
        },
    )

    email: Annotated[str, Field(max_length=320, pattern=ERASURE_EMAIL)] | None = None
    phone: Annotated[str, Field(max_length=40, pattern=ERASURE_PHONE)] | None = None
    lead_ids: Annotated[
        list[Annotated[str, Field(max_length=200, pattern=NONBLANK)]], Field(max_length=MAX_LEAD_IDS)
    ] = Field(default_factory=list)


class ErasureAccepted(BaseModel):
    status: Literal["accepted"]
    request_id: str
    event_id: str
    subject_hash: str
    spool_records_erased: int


MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    FormAccepted,
    ScanBatchResult,
    WebhookPost,
    WebhookAccepted,
    ErasureRequest,
    ErasureAccepted,
    ScanBatch,
    Scan,
)

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid credentials",
    403: "Not allowed (origin, or link not valid)",
    404: "Not found",
    409: "A request with this Idempotency-Key is still running",
    410: "Link expired",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid input: each bad field is named",
    429: "Too many requests",
    503: "Temporarily unavailable (retry)",
}
_RETRY = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}


def ref(model: str) -> dict[str, str]:
    return {"$ref": REF.format(model=model)}


def problem(status: int, description: str | None = None, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description or _DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
    }
    if status in (409, 429, 503):
        out["headers"] = dict(_RETRY)
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {"description": "The bearer challenge.", "schema": {"type": "string"}}}
    if headers:
        out.setdefault("headers", {}).update(headers)
    return out


def html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def json(model: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(model)}}}


def merge(*responses: dict[str, Any]) -> dict[str, Any]:
    """One response object for a status answered in more than one media type."""
    out: dict[str, Any] = {"description": " / ".join(r["description"] for r in responses), "content": {}}
    for r in responses:
        out["content"].update(r["content"])
        if "headers" in r:
            out.setdefault("headers", {}).update(r["headers"])
    return out


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: problem(s) for s in statuses}


def json_body(model: str, description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": ref(model)}},
        }
    }


# ---- web forms: one schema per configured form ------------------------------------------
_SECTIONS: dict[str, type[BaseModel]] = {
    "identity": Identity,
    "person": Person,
    "context": CaptureContext,
    "qualification": Qualification,
}


def _max_length(target: str) -> int | None:
    """The lead field's own length limit, from its model."""
    section, _, leaf = target.partition(".")
    model = _SECTIONS[section]
    if section == "qualification" and leaf not in model.model_fields:
        leaf = "need"  # kept under qualification.other, as long as a need may be
    prop = model.model_json_schema()["properties"].get(leaf, {})
    for option in [prop, *prop.get("anyOf", [])]:
        if "maxLength" in option:
            return int(option["maxLength"])
    return None


def _padded(core: str, required: bool) -> str:
    """A pattern for the stripped value ``core``, blanks around it allowed; blank alone too if optional."""
    if required:
        return f"^[{WS}]*{core}[{WS}]*$"
    return f"^[{WS}]*({core}[{WS}]*)?$" if core else f"^[{WS}]*$"


def _field_schema(target: str, required: bool, *, json: bool) -> dict[str, Any]:
    """What the server takes for one mapped field (values are stripped of surrounding spaces)."""
    scalars: list[dict[str, Any]] = [{"type": "number"}, {"type": "boolean"}] if json else []
    if target in _LIST_FIELDS:
        item = {"type": "string", "maxLength": 500}
        out: dict[str, Any] = {"anyOf": [item, {"type": "array", "items": item, "maxItems": 20}]}
    elif target in _INT_FIELDS:
        whole = {"type": "string", "pattern": _padded("[0-9]{1,9}", required)}
        out = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 999_999_999}, whole] if json else [whole]}
    elif target == "identity.email":
        out = {"type": "string", "pattern": _padded(EMAIL_PATTERN[1:-1], required), "maxLength": 320}
    elif target == "identity.phone":
        out = {"type": "string", "format": "phone", "maxLength": 40}
        if not required:
            out = {"anyOf": [out, {"type": "string", "pattern": _padded("", False)}]}
        out["description"] = "A valid phone number (+country code unless the form has a default region)."
    else:
        text: dict[str, Any] = {"type": "string", "maxLength": _max_length(target) or 500}
        if required:  # blank is missing
            text["pattern"] = NONBLANK
        out = {"anyOf": [text, *scalars]} if scalars else text
    if not required and json:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def form_schema(config: FormConfig, *, json: bool = True) -> dict[str, Any]:
    """The fields a form maps (posted name -> lead field), the ones it requires and its consent
    boxes, as JSON or as a browser's urlencoded post (text only, no nulls)."""
    props: dict[str, Any] = {
        name: _field_schema(target, name in config.required, json=json) | {"description": f"-> {target}"}
        for name, target in config.fields.items()
    }
    for box in config.consent:
        ticked = "Consent box, ticked when on/true/yes/1/y/checked"
        box_schema: dict[str, Any] = (
            {"anyOf": [{"type": "boolean"}, {"type": "string"}, {"type": "null"}]} if json else {"type": "string"}
        )
        props[box.field] = box_schema | {"description": f"{ticked}: {box.text}"}
    return {
        "type": "object",
        "title": f"Form {config.id}" + ("" if json else " (urlencoded)"),
        "description": f"{config.title}. Needs an email or a phone. Fields not listed are ignored.",
        "properties": props,
        "required": list(config.required),
    }


def form_components(forms: Iterable[FormConfig]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for config in forms:
        out[f"Form_{config.id}"] = form_schema(config)
        out[f"Form_{config.id}_urlencoded"] = form_schema(config, json=False)
    return out


def install(app: FastAPI, forms: Mapping[str, FormConfig], providers: Iterable[str]) -> None:
    """Serve the contract with the models above, one schema per configured form, and the
    configured form ids and webhook providers as the values their paths take."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            _, defs = models_json_schema([(m, "validation") for m in MODELS], ref_template=REF)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.get("$defs", {}))
            components.update(form_components(forms.values()))
            _bind_form_ids(schema, sorted(forms))
            _enumerate(schema, "/v1/webhooks/{provider}", "post", "provider", sorted(providers))
            # The scans of a batch are checked one by one (a bad scan does not refuse the batch),
            # but each is a Scan: say so.
            components["ScanBatch"]["properties"]["scans"]["items"] = ref("Scan")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _bind_form_ids(schema: dict[str, Any], form_ids: list[str]) -> None:
    """A form post's body is the schema of the form named in its path."""
    operation = schema["paths"].get("/v1/forms/{form_id}", {}).get("post")
    if operation is None or not form_ids:
        return
    for media, suffix in (("application/json", ""), ("application/x-www-form-urlencoded", "_urlencoded")):
        refs = [ref(f"Form_{f}{suffix}") for f in form_ids]
        operation["requestBody"]["content"][media]["schema"] = {"oneOf": refs} if len(refs) > 1 else refs[0]
    for method in ("post", "options"):
        _enumerate(schema, "/v1/forms/{form_id}", method, "form_id", form_ids)


def _enumerate(schema: dict[str, Any], path: str, method: str, name: str, values: list[str]) -> None:
    operation = schema["paths"].get(path, {}).get(method)
    if operation is None or not values:
        return
    for param in operation.get("parameters", []):
        if param["name"] == name and param["in"] == "path":
            param["schema"] = {"type": "string", "enum": values, "title": param["schema"].get("title", name)}
