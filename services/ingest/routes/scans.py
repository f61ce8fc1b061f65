"""Capture source: booth scans (``POST /v1/scans``), batches from a scanner app or from
``leadpipe scans upload`` (a booth's lead-retrieval export), with per-scan results, scan-id
dedupe per show and ``Idempotency-Key`` replays."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header

from services.ingest import contract
from services.ingest.bootstrap import IngestDeps
from services.ingest.checks import Deps, LimitedBody, Rejected, json_only, scanner
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.domain.scans import ScanBatch, build_captures, parse_batch
from services.ingest.publishing import SpoolUnavailable, publish
from services.ingest.web import json_response, problem

router = APIRouter(tags=["booth scans"])

scan_body = LimitedBody(lambda s: s.ingest_max_scan_bytes)


@router.post(
    "/v1/scans",
    status_code=202,
    summary="Upload a batch of booth scans",
    responses={
        202: contract.json("ScanBatchResult", "Per-scan results (some accepted or duplicate)"),
        **contract.problems(401, 409, 413, 415),
        422: contract.merge(
            contract.problem(422, "The batch is malformed, or its Idempotency-Key was used for another batch"),
            contract.json("ScanBatchResult", "Every scan was rejected: per-scan results"),
        ),
        503: contract.problem(503),
    },
    openapi_extra=contract.json_body("ScanBatch", "Up to 1000 scans from one device at one booth of one show."),
)
async def post_scans(
    deps: Deps,
    caller: Annotated[str, Depends(scanner)],
    _: Annotated[str, Depends(json_only)],
    body: Annotated[bytes, Depends(scan_body)],
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Retries of one batch with the same key are answered once; a key is for one batch "
            "(reused for another: 422).",
            json_schema_extra={"maxLength": 200},
        ),
    ] = None,
) -> Any:
    try:
        batch = parse_batch(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise Rejected(422, "Invalid JSON", str(exc), reason="invalid",
                       errors=[FieldProblem("body", "is not valid JSON")]) from exc  # fmt: skip
    except InvalidInput as exc:
        raise Rejected(422, "Invalid scan batch", str(exc), reason="invalid", errors=exc.problems) from exc
    store, ttl = deps.store, deps.settings.ingest_idempotency_ttl_s
    idem = idempotency_key
    fingerprint = hashlib.sha256(body).hexdigest()
    if idem:
        if len(idem) > 200:
            raise Rejected(422, "Invalid Idempotency-Key",
                           errors=[FieldProblem("Idempotency-Key", "longer than 200 characters")])  # fmt: skip
        stored = await store.begin_idempotent(caller, idem, fingerprint, ttl)
        if stored is not None:
            if stored.get("fingerprint") != fingerprint:
                raise Rejected(
                    422,
                    "Idempotency-Key reused",
                    "this key was used for a different batch",
                    errors=[FieldProblem("Idempotency-Key", "already used with another body")],
                )
            if stored.get("state") != "done":
                raise Rejected(409, "Batch in progress", "a request with this Idempotency-Key is still running",
                               headers={"Retry-After": "1"})  # fmt: skip
            deps.metrics.rejected.labels("idempotent_replay").inc()
            return json_response(int(stored["status"]), stored["body"], {"Idempotent-Replayed": "true"})
    batch_id = idem or str(uuid.uuid4())
    try:
        status, result = await _accept_batch(deps, batch, batch_id)
    except SpoolUnavailable:
        if idem:
            await store.abandon_idempotent(caller, idem)
        return problem(503, "Temporarily unavailable", "please retry", headers={"Retry-After": "5"})
    except Exception:
        if idem:
            await store.abandon_idempotent(caller, idem)
        raise
    if idem:
        await store.finish_idempotent(caller, idem, fingerprint, status, result, ttl)
    return json_response(status, result)


async def _accept_batch(deps: IngestDeps, batch: ScanBatch, batch_id: str) -> tuple[int, dict[str, Any]]:
    good, bad = build_captures(batch, batch_id=batch_id)
    results: dict[int, dict[str, Any]] = {}
    for r in bad:
        deps.metrics.rejected.labels("invalid_scan").inc()
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
    ttl = deps.settings.ingest_scan_dedupe_ttl_s
    claims = await deps.store.claim_scans(batch.show_id, [g.scan_id for g in fresh], ttl)
    new = [g for g, first in zip(fresh, claims, strict=True) if first]
    for g, first in zip(fresh, claims, strict=True):
        if not first:
            results[g.index] = {"index": g.index, "scan_id": g.scan_id, "status": "duplicate"}
    try:
        ids, outcomes = await publish(deps, new, f"scans/{batch.show_id}")
    except SpoolUnavailable:
        await deps.store.release_scans(batch.show_id, [g.scan_id for g in new])
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
