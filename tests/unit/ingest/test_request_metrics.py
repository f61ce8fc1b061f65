"""Every HTTP request is counted and timed by route template, method and status (the plain
ASGI ``RequestMetrics`` middleware), whatever answered it: the route, an exception handler,
the router's 404, or the server-error middleware after an unhandled exception."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry

from services.ingest.adapters.metrics import IngestMetrics
from services.ingest.app import RequestMetrics


def app_with_metrics() -> tuple[FastAPI, IngestMetrics]:
    metrics = IngestMetrics(CollectorRegistry())
    app = FastAPI()

    @app.post("/v1/items/{item_id}", status_code=202)
    async def accept(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @app.get("/v1/refused")
    async def refused() -> None:
        raise HTTPException(403, "not you")

    @app.get("/v1/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_middleware(RequestMetrics, metrics=metrics)
    return app, metrics


def count(metrics: IngestMetrics, route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return metrics.registry.get_sample_value("leadpipe_http_requests_total", labels) or 0.0


def timed(metrics: IngestMetrics, route: str) -> float:
    return metrics.registry.get_sample_value("leadpipe_http_request_duration_seconds_count", {"route": route}) or 0.0


async def test_each_request_is_counted_by_route_template_method_and_status() -> None:
    app, metrics = app_with_metrics()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/v1/items/a")).status_code == 202
        assert (await client.post("/v1/items/b")).status_code == 202
        assert (await client.get("/v1/refused")).status_code == 403
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/v1/broken")).status_code == 500

    assert count(metrics, "/v1/items/{item_id}", "POST", "202") == 2
    assert timed(metrics, "/v1/items/{item_id}") == 2
    assert count(metrics, "/v1/refused", "GET", "403") == 1
    assert count(metrics, "unmatched", "GET", "404") == 1
    assert count(metrics, "/v1/broken", "GET", "500") == 1
    assert timed(metrics, "/v1/broken") == 1
