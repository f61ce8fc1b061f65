"""Ops endpoints (not part of the API contract): Prometheus metrics, liveness, readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.ingest.checks import Deps
from services.ingest.web import json_response

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics_endpoint(deps: Deps) -> Response:
    return Response(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> Response:
    return json_response(200, {"status": "ok"})


@router.get("/readyz")
async def readyz(deps: Deps) -> Response:
    checks = {"redis": await deps.store.ping(), **await deps.publisher.ready()}
    # A broker outage does not make ingest unready: the spool keeps accepting.
    ok = checks["redis"] and checks["spool"]
    return json_response(200 if ok else 503, {"status": "ok" if ok else "unavailable", "checks": checks})
