"""``python -m leadpipe.exporter``: consumer lag and topic depths as Prometheus metrics.

Every ``EXPORTER_INTERVAL_S`` it reads broker offsets and exports, on its own
``CollectorRegistry``:

- ``leadpipe_consumer_lag{group,topic,partition}``: end offset minus the group's committed
  offset (and ``leadpipe_consumer_committed_offset``, whose rate is the consume rate), for
  the consumer groups in ``EXPORTER_GROUPS`` (comma-separated; default: every
  group on the broker) on the registry's topics (plus ``EXPORTER_TOPICS``);
- ``leadpipe_topic_records{topic}``: records retained per topic (for ``*.dlq``: DLQ depth).

``/healthz`` says the process is alive; ``/readyz`` that the last collection succeeded
within three intervals (so the broker is reachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field

from leadpipe.ops.lag import Offsets, PartitionLag
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.logs import setup_logging
from leadpipe.runtime.metrics import LATENCY_BUCKETS, serve_ops

log = logging.getLogger("leadpipe.exporter")


class ExporterSettings(OpsSettings):
    exporter_host: str = "127.0.0.1"
    exporter_port: int = 9104
    # How often it reads every offset (about twenty broker requests a round). The readers want
    # less: the lag alerts hold for 10 to 15 min, ExporterDown fires on a value over 120 s old,
    # the dashboard refreshes every 30 s, and rate() over the committed offsets spans 5 to 10 min.
    # Every 15 s (Prometheus's scrape) gave an idle stack's exporter and broker twice the work
    # for values no rule or panel could tell apart (issue #13).
    exporter_interval_s: float = Field(default=30.0, gt=0)
    exporter_groups: str = ""
    exporter_topics: str = ""

    def groups(self) -> list[str] | None:
        return _split(self.exporter_groups) or None

    def topics(self) -> list[str]:
        return _split(self.exporter_topics)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class ExporterMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.lag = Gauge(
            "leadpipe_consumer_lag",
            "Records a consumer group has not yet committed (end offset - committed offset)",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.committed = Gauge(
            "leadpipe_consumer_committed_offset",
            "A consumer group's committed offset (rate() of it is the group's consume rate)",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.topic_records = Gauge(
            "leadpipe_topic_records",
            "Records retained in a topic (end - start offset over its partitions); for *.dlq the DLQ depth",
            ["topic"],
            registry=registry,
        )
        self.errors = Counter("leadpipe_exporter_errors_total", "Offset collections that failed", registry=registry)
        self.last_success = Gauge(
            "leadpipe_exporter_last_success_timestamp_seconds",
            "Unix time of the last successful offset collection",
            registry=registry,
        )
        self.collect_seconds = Histogram(
            "leadpipe_exporter_collect_seconds",
            "Time to read every offset once",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def apply(self, rows: Iterable[PartitionLag], records: dict[str, int]) -> None:
        """Replace every exported value; a partition or topic no longer seen disappears."""
        self.lag.clear()
        self.committed.clear()
        for row in rows:
            self.lag.labels(row.group, row.topic, str(row.partition)).set(row.lag)
            self.committed.labels(row.group, row.topic, str(row.partition)).set(row.committed)
        self.topic_records.clear()
        for topic, count in records.items():
            self.topic_records.labels(topic).set(count)


async def collect_once(offsets: Offsets, metrics: ExporterMetrics, settings: ExporterSettings) -> None:
    started = time.perf_counter()
    rows, records = await offsets.both(settings.groups(), settings.topics())
    # Both reads are done before any value changes, so a scrape never sees a half-updated set.
    metrics.apply(rows, records)
    metrics.collect_seconds.observe(time.perf_counter() - started)
    metrics.last_success.set(time.time())


async def run(settings: ExporterSettings, registry: CollectorRegistry | None = None) -> None:
    registry = registry or CollectorRegistry()
    metrics = ExporterMetrics(registry)
    last_ok = 0.0

    async def ready() -> dict[str, bool]:
        return {"broker": time.monotonic() - last_ok < 3 * settings.exporter_interval_s if last_ok else False}

    runner = await serve_ops(registry, ready, settings.exporter_host, settings.exporter_port)
    log.info("exporter serving /metrics on %s:%d", settings.exporter_host, settings.exporter_port)
    try:
        while True:
            try:
                async with Offsets(settings) as offsets:
                    while True:
                        await collect_once(offsets, metrics, settings)
                        last_ok = time.monotonic()
                        await asyncio.sleep(settings.exporter_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.errors.inc()
                log.warning("offset collection failed, retrying in %.0fs: %s", settings.exporter_interval_s, exc)
                await asyncio.sleep(settings.exporter_interval_s)
    finally:
        await runner.cleanup()


def main() -> None:
    settings = ExporterSettings()  # KAFKA_BOOTSTRAP_SERVERS from the environment
    setup_logging("exporter", level=settings.log_level, json_logs=settings.log_json)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
