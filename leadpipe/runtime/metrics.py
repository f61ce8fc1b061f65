"""Metrics objects built on an explicit ``CollectorRegistry`` (so tests can read them), and
a small ops HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
AGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


class StageMetrics:
    """The per-stage pipeline signals every consuming service exports."""

    def __init__(self, service: str, registry: CollectorRegistry):
        self.service = service
        self.registry = registry
        self.consumed = Counter(
            "leadpipe_events_consumed_total", "Events read from a topic", ["service", "topic"], registry=registry
        )
        self.published = Counter(
            "leadpipe_events_published_total", "Events published to a topic", ["service", "topic"], registry=registry
        )
        self.dead_lettered = Counter(
            "leadpipe_events_dead_lettered_total",
            "Records sent to a dead-letter topic",
            ["service", "topic", "reason"],
            registry=registry,
        )
        # privacy hook (crypto-shredding): records whose person was erased are skipped, not dead-lettered
        self.erased_skipped = Counter(
            "leadpipe_events_erased_skipped_total",
            "Records skipped because their person was erased (data key destroyed)",
            ["service", "topic"],
            registry=registry,
        )
        self.retries = Counter(
            "leadpipe_event_retries_total", "Transient failures retried", ["service", "topic"], registry=registry
        )
        self.processing = Histogram(
            "leadpipe_event_processing_seconds",
            "Time to handle one event (decode, handle, publish)",
            ["service", "topic"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_age = Histogram(
            "leadpipe_event_age_seconds",
            "Age of an event (now - ce_time) when handled: end-to-end latency up to this stage",
            ["service", "topic"],
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        # How many records a batch-mode stage took at once. Its CPU per lead falls as batches
        # grow (bench/results/issue13-round9: 15 ms per lead at 100 forms/s, 8 saturated): a
        # stage whose batches stay at 1-2 under load pays the per-batch costs for every record.
        self.batch_records = Histogram(
            "leadpipe_batch_records",
            "Records a batch-mode stage took in one batch",
            ["service"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.last_processed = Gauge(
            "leadpipe_last_event_processed_timestamp_seconds",
            "Unix time the stage last finished an event",
            ["service", "topic"],
            registry=registry,
        )

    def done(self, topic: str, started: float, event_time: float | None) -> None:
        now = time.time()
        self.processing.labels(self.service, topic).observe(time.perf_counter() - started)
        self.last_processed.labels(self.service, topic).set(now)
        if event_time is not None:
            self.event_age.labels(self.service, topic).observe(max(0.0, now - event_time))


ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


def ops_app(registry: CollectorRegistry, ready: ReadyCheck) -> web.Application:
    """aiohttp app with /metrics, /healthz (alive) and /readyz (dependencies reachable)."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_ops(registry: CollectorRegistry, ready: ReadyCheck, host: str, port: int) -> web.AppRunner:
    # No access log: Prometheus scrapes and probes every few seconds would be most of the log.
    runner = web.AppRunner(ops_app(registry, ready), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
