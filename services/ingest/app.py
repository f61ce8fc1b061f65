"""The ingest ASGI app: wiring, middleware and the ops endpoints. Routes live in handlers.py."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadpipe.runtime.kafka import make_consumer, make_producer
from services.ingest.adapters.metrics import IngestMetrics
from services.ingest.adapters.publisher import Publisher
from services.ingest.adapters.redis_store import RedisStore
from services.ingest.adapters.spool import SqliteSpool
from services.ingest.config import IngestSettings
from services.ingest.domain.errors import FieldProblem
from services.ingest.domain.forms import FormConfig
from services.ingest.handlers import build_router
from services.ingest.web import json_response, problem

log = logging.getLogger(__name__)


def load_forms(directory: Path) -> dict[str, FormConfig]:
    forms: dict[str, FormConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        config = FormConfig.from_mapping(yaml.safe_load(path.read_text()))
        forms[config.id] = config
    return forms


@dataclass
class IngestDeps:
    """Everything the routes talk to; tests build their own (fresh registry, own spool)."""

    publisher: Publisher
    store: RedisStore
    metrics: IngestMetrics
    forms: dict[str, FormConfig]
    redis: Redis[bytes]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def build_deps(settings: IngestSettings, registry: CollectorRegistry | None = None) -> IngestDeps:
    metrics = IngestMetrics(registry or CollectorRegistry())
    redis = Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    timeout_ms = int(settings.ingest_publish_timeout_s * 1000)
    publisher = Publisher(
        # request_timeout bounds how long a batch may wait for the broker before it fails and
        # is spooled: aiokafka never sends an expired batch later, so it is spooled only once.
        # Not idempotent: aiokafka's idempotent producer keeps retrying a batch it has started
        # instead of failing it at the timeout (measured: with the broker cut, 2 requests in 3 s
        # instead of ~130, nothing spooled), and a 202 must not wait on the broker. Exactly-once
        # on the topic comes from the spool instead: a failed send is marked maybe-sent and
        # looked up on the topic before it is replayed.
        make_producer(settings, request_timeout_ms=timeout_ms, metadata_max_age_ms=30_000, enable_idempotence=False),
        SqliteSpool(settings.spool_path),
        metrics,
        consumer_factory=lambda: make_consumer(settings, group_id=None, enable_auto_commit=False),
    )
    return IngestDeps(publisher, RedisStore(redis), metrics, load_forms(settings.ingest_forms_dir), redis)


def create_app(settings: IngestSettings, deps: IngestDeps | None = None) -> FastAPI:
    deps = deps or build_deps(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await deps.publisher.start()
        try:
            yield
        finally:
            await deps.publisher.stop()
            await deps.redis.aclose()  # type: ignore[attr-defined]  # stubs predate aclose
            deps.publisher.spool.close()

    app = FastAPI(title="leadpipe ingest", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.deps = deps
    app.include_router(build_router(settings, deps))
    metrics = deps.metrics

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics.requests.labels(path, request.method, str(status)).inc()
            metrics.duration.labels(path).observe(time.perf_counter() - started)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, exc: RedisError) -> Response:
        # A route that cannot answer safely without Redis (webhook replay guard, scan and link
        # idempotency) asks the client to retry instead of failing with a bare 500.
        log.warning("redis unavailable: %s", exc)
        return problem(503, "Temporarily unavailable", "please retry", headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        errors = [FieldProblem(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        return problem(422, "Invalid request", errors=errors)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks = {"redis": await deps.store.ping(), **await deps.publisher.ready()}
        # A broker outage does not make ingest unready: the spool keeps accepting.
        ok = checks["redis"] and checks["spool"]
        return json_response(200 if ok else 503, {"status": "ok" if ok else "unavailable", "checks": checks})

    return app
