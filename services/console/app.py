"""The console ASGI app: wiring, the projector task and the ops endpoints. Pages live in pages.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from leadpipe.runtime.kafka import make_producer, publish
from schemas.envelope import Envelope
from services.console import projector
from services.console.adapters.metrics import ConsoleMetrics
from services.console.adapters.postgres_store import REFILL_AFTER, PostgresStore
from services.console.config import DEV_PASSWORD_HASH, DEV_SESSION_SECRET, ConsoleSettings
from services.console.domain.access import users_from_team
from services.console.handlers import Projector
from services.console.pages import PageDeps, build_router

log = logging.getLogger(__name__)
RESTART_AFTER_S = 2.0


def create_app(settings: ConsoleSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    metrics = ConsoleMetrics(registry or CollectorRegistry())
    if (
        settings.console_session_secret == DEV_SESSION_SECRET
        or DEV_PASSWORD_HASH in settings.console_password_hashes.values()
    ):
        log.warning("the console runs with dev credentials: set CONSOLE_SESSION_SECRET and CONSOLE_PASSWORD_HASHES")
    users = users_from_team(yaml.safe_load(settings.console_sales_team.read_text()))
    # The pages read on their own connection, so a long projection batch does not hold them up.
    reads = PostgresStore(settings.database_url)
    writes = PostgresStore(settings.database_url)
    ready = asyncio.Event()
    producer: dict[str, AIOKafkaProducer] = {}

    async def send(event: Envelope[Any]) -> None:
        await publish(producer["p"], event, max_bytes=settings.kafka_max_record_bytes)
        metrics.published.labels(event.data.EVENT_TYPE).inc()

    backfill = {"needed": False}
    secret = settings.leadpipe_privacy_secret

    async def keep_projecting() -> None:
        """The projector, restarted after a failure (PostgreSQL or the broker gone): logged,
        counted, and /readyz says unavailable until it runs again. A new, empty read model is
        first filled from the start of the topics: the consumer group's committed offsets may
        belong to a database that is gone (Kafka is the source of truth, PostgreSQL is not)."""
        while True:
            try:
                if backfill["needed"]:
                    log.info("empty read model: rebuilding it from the topics before following them")
                    await projector.rebuild(settings, writes, Projector(writes, metrics, privacy_secret=secret))
                    backfill["needed"] = False
                await projector.run(settings, Projector(writes, metrics, privacy_secret=secret, publish=send), ready)
            except asyncio.CancelledError:
                raise
            except Exception:
                ready.clear()
                metrics.restarts.inc()
                log.exception("the console projection stopped; restarting in %.0f s", RESTART_AFTER_S)
                await asyncio.sleep(RESTART_AFTER_S)
                with contextlib.suppress(Exception):
                    await writes.close()
                    await writes.connect()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await writes.connect()
        backfill["needed"] = bool(REFILL_AFTER.intersection(await writes.migrate()))
        await reads.connect()
        producer["p"] = make_producer(settings)
        await producer["p"].start()
        task = asyncio.create_task(keep_projecting())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await producer["p"].stop()
            await reads.close()
            await writes.close()

    app = FastAPI(title="leadpipe console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(build_router(PageDeps(settings, reads, users, send)))

    def json(status: int, body: Any) -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return json(200, {"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks = {"postgres": await reads.ping(), "partitions_assigned": ready.is_set()}
        ok = all(checks.values())
        return json(200 if ok else 503, {"status": "ok" if ok else "unavailable", "checks": checks})

    return app
