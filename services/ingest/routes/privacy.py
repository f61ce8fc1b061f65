"""Erasure requests from a CRM or a DSR tool (``POST /v1/privacy/erasure``, privacy keys only):
the person's spooled records are erased here, and the request is published for every service."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends

from leadpipe.runtime.keystore import KeyStoreUnavailable, shred_item
from schemas.person_erased.v1 import ErasedItem, PersonErased
from schemas.person_erasure_requested.v1 import erasure_request
from schemas.pii import refs_for
from services.ingest import contract
from services.ingest.checks import Deps, LimitedBody, Rejected, json_only, privacy_caller
from services.ingest.domain.erasure import parse_erasure, spool_keys
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.publishing import Outgoing, SpoolUnavailable, publish
from services.ingest.web import json_response, problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["privacy"])

MAX_ERASURE_BYTES = 16_000
erasure_body = LimitedBody(lambda _: MAX_ERASURE_BYTES)


@router.post(
    "/v1/privacy/erasure",
    status_code=202,
    summary="Request a person's erasure",
    responses={
        202: contract.json("ErasureAccepted", "Accepted: published for every service"),
        **contract.problems(401, 413, 415, 422, 503),
    },
    openapi_extra=contract.json_body("ErasureRequest", "Who to erase."),
)
async def post_erasure(
    deps: Deps,
    caller: Annotated[str, Depends(privacy_caller)],
    _: Annotated[str, Depends(json_only)],
    body: Annotated[bytes, Depends(erasure_body)],
) -> object:
    try:
        wanted = parse_erasure(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise Rejected(422, "Invalid JSON", str(exc), reason="invalid",
                       errors=[FieldProblem("body", "is not valid JSON")]) from exc  # fmt: skip
    except InvalidInput as exc:
        raise Rejected(422, "Invalid erasure request", str(exc), reason="invalid", errors=exc.problems) from exc
    # The spool first: a record still waiting for the broker would otherwise reach scoring
    # after the request and bring the person back.
    spooled = await deps.publisher.erase_spooled([k.encode() for k in spool_keys(wanted.email, wanted.phone)])
    req = erasure_request(
        deps.settings.leadpipe_privacy_secret,
        request_id=str(uuid.uuid4()),
        requested_at=datetime.now(UTC),
        requested_by=f"api:{caller}",
        email=wanted.email,
        phone=wanted.phone,
        lead_ids=wanted.lead_ids,
    )
    # privacy hook: the person's data keys go before the request does (crypto-shredding)
    try:
        shredded = shred_item(refs_for(email=wanted.email, phone=wanted.phone, lead_ids=wanted.lead_ids))
    except KeyStoreUnavailable:
        return problem(503, "Temporarily unavailable", "the data-key store is unreachable; please retry",
                       headers={"Retry-After": "5"})  # fmt: skip
    receipt = PersonErased(
        request_id=req.request_id,
        subject_hash=req.subject_hash,
        service="ingest",
        erased_at=datetime.now(UTC),
        items=[ErasedItem(store="sqlite:ingest spool (this replica)", action="deleted", count=spooled), *shredded],
        remaining=["the spools of other ingest replicas", "lead.captured.v1 / lead.engagement.v1: until retention"],
    )
    try:
        ids, _outcomes = await publish(deps, [Outgoing(req, req.subject_hash), Outgoing(receipt, req.subject_hash)],
                               "privacy/erasure")  # fmt: skip
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
