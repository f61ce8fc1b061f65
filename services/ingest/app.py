"""The ingest ASGI app: routes assembled, request metrics and error answers. What the routes
talk to is built once in bootstrap.py; each capture source is a module under routes/."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadpipe.runtime.keystore import close_keyring
from services.ingest import contract
from services.ingest.adapters.metrics import IngestMetrics
from services.ingest.bootstrap import IngestDeps, build_deps
from services.ingest.checks import Rejected
from services.ingest.config import IngestSettings
from services.ingest.domain.errors import FieldProblem
from services.ingest.routes import forms, links, ops, pages, privacy, scans, webhooks
from services.ingest.web import problem

log = logging.getLogger(__name__)

ROUTERS = (forms.router, scans.router, webhooks.router, links.router, privacy.router, pages.router, ops.router)


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
            await close_keyring()  # the keyring's asyncio client lives in this loop
            deps.publisher.spool.close()

    app = FastAPI(title="leadpipe ingest", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.deps = deps
    for router in ROUTERS:
        app.include_router(router)
    contract.install(app, deps.forms, deps.settings.ingest_webhook_secrets)
    metrics = deps.metrics

    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(Rejected)
    async def rejected(_: Request, exc: Rejected) -> Response:
        if exc.reason:
            metrics.rejected.labels(exc.reason).inc()
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route matching the path.
            routes = [*app.router.routes, *(route for router in ROUTERS for route in router.routes)]
            headers = {"Allow": ", ".join(allowed_methods(routes, request.scope))}
        return problem(exc.status_code, str(exc.detail), headers=headers)

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

    return app


class RequestMetrics:
    """Counts and times every HTTP request by route template, method and status. Plain ASGI:
    Starlette's ``BaseHTTPMiddleware`` (``@app.middleware("http")``) ran each request through
    an extra task and in-memory streams (issue #13). The status is the one the response
    started with; a request that raised before answering counts as 500 (the server-error
    middleware outside this one answers it)."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            # The router put the matched route into this same scope dict on the way in.
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.duration.labels(path).observe(time.perf_counter() - started)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the request's path (for a 405's ``Allow``). The
    routers are searched themselves: FastAPI wraps an included router in one opaque route."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)
