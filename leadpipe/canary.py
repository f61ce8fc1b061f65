"""The canary: a synthetic lead through the whole pipeline on a timer.

Every ``interval`` it publishes a ``lead.captured.v1`` event flagged ``synthetic`` (an address
under the reserved ``canary.leadpipe.invalid`` domain, so nothing could ever reach a person;
the notifier ends synthetic requests as ``sent`` without delivering them). It watches
``lead.scored.v1``, ``notification.requested.v1`` and ``notification.outcome.v1`` for events
carrying the canary's correlation id, and exports on its own registry:

- ``leadpipe_canary_last_success_timestamp_seconds``: the last canary whose outcome came back
  ``sent`` (starts at the process start, so a canary that never succeeds alerts);
- ``leadpipe_canary_stage_last_seen_timestamp_seconds{topic}``: the last time a canary event
  was seen on each topic, to locate a stalled stage;
- ``leadpipe_canary_published_total``, ``leadpipe_canary_completed_total``,
  ``leadpipe_canary_failed_total{reason}`` and ``leadpipe_canary_round_trip_seconds``.

Run it with ``leadpipe canary --interval 30`` (``/metrics`` on ``CANARY_PORT``, default 9105).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from leadpipe.ops.reader import partitions, plain_consumer
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.kafka import make_producer, publish
from leadpipe.runtime.metrics import serve_ops
from schemas import LeadCaptured, NotificationOutcome, SourceKind, new_event
from schemas.codec import decode
from schemas.errors import DecodeError
from schemas.lead_captured.v1 import CaptureContext, Identity, Person, Qualification

log = logging.getLogger("leadpipe.canary")

#: Reserved by RFC 2606 (``.invalid``): no mail can be delivered there.
CANARY_DOMAIN = "canary.leadpipe.invalid"
SOURCE = "leadpipe/canary"
WATCHED = ("lead.scored.v1", "notification.requested.v1", "notification.outcome.v1")
ROUND_TRIP_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: The watching consumer's longest wait for an empty fetch (at least the services'
#: ``KAFKA_FETCH_IDLE_WAIT_MS``, also 10 s by default). An idle fetch covers every
#: watched partition and Kafka answers it as soon as a record arrives on any, so a longer wait
#: costs the round trip nothing and spares four of every five empty answers (the broker's and
#: the canary's work between two canaries). aiokafka's request timeout (40 s) stays well above.
WATCH_IDLE_FETCH_WAIT_MS = 10_000


def canary_lead(canary_id: str, now: datetime) -> LeadCaptured:
    """A hot, fully qualified synthetic lead (so scoring grades it for a rep alert)."""
    return LeadCaptured(
        capture_id=f"canary-{canary_id}",
        source_kind=SourceKind.WEB_FORM,
        captured_at=now,
        identity=Identity(email=f"probe-{canary_id}@{CANARY_DOMAIN}", external_id=f"canary-{canary_id}"),
        person=Person(
            first_name="Canary",
            last_name="Probe",
            job_title="VP of Operations",
            company="leadpipe canary",
            company_domain=CANARY_DOMAIN,
            country="US",
            language="en",
        ),
        context=CaptureContext(form_id="leadpipe-canary"),
        qualification=Qualification(
            need="synthetic end-to-end check",
            budget="100k",
            authority="decision maker",
            timeline="this month",
            seats=500,
        ),
        tags=("canary",),
    )


class CanaryMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.last_success = Gauge(
            "leadpipe_canary_last_success_timestamp_seconds",
            "Unix time a synthetic lead last came back from the notifier as sent (process start until then)",
            registry=registry,
        )
        self.last_success.set(time.time())
        self.stage_last_seen = Gauge(
            "leadpipe_canary_stage_last_seen_timestamp_seconds",
            "Unix time a canary event was last seen on a topic",
            ["topic"],
            registry=registry,
        )
        self.published = Counter("leadpipe_canary_published_total", "Synthetic leads published", registry=registry)
        self.completed = Counter(
            "leadpipe_canary_completed_total", "Synthetic leads that came back as sent", registry=registry
        )
        self.failed = Counter(
            "leadpipe_canary_failed_total",
            "Synthetic leads that did not come back as sent (timeout, or the outcome's status)",
            ["reason"],
            registry=registry,
        )
        self.round_trip = Histogram(
            "leadpipe_canary_round_trip_seconds",
            "Synthetic lead published to its notification outcome",
            buckets=ROUND_TRIP_BUCKETS,
            registry=registry,
        )


@dataclass
class InFlight:
    published: float
    seen: list[str] = field(default_factory=list)


class Canary:
    """Publishes synthetic leads and matches what comes back by correlation id."""

    def __init__(
        self,
        settings: OpsSettings,
        metrics: CanaryMetrics,
        *,
        timeout_s: float,
        captured_topic: str = "lead.captured.v1",
        watched: tuple[str, ...] = WATCHED,
        outcome_topic: str = "notification.outcome.v1",
    ):
        self.settings = settings
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.captured_topic = captured_topic
        self.watched = watched
        self.outcome_topic = outcome_topic
        self.in_flight: dict[str, InFlight] = {}
        self.succeeded = 0
        self.failures = 0

    async def start_watching(self, consumer: AIOKafkaConsumer) -> None:
        tps: list[TopicPartition] = []
        for topic in self.watched:
            tps += await partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end now, so nothing published after this is missed
            await consumer.position(tp)

    async def publish_one(self, producer: AIOKafkaProducer) -> str:
        canary_id = uuid.uuid4().hex[:16]
        event = new_event(
            canary_lead(canary_id, datetime.now(UTC)),
            source=SOURCE,
            subject=f"canary:{canary_id}",
            synthetic=True,
        )
        self.in_flight[event.id] = InFlight(time.monotonic())
        await publish(producer, event, max_bytes=self.settings.kafka_max_record_bytes, topic=self.captured_topic)
        self.metrics.published.inc()
        log.info("canary published", extra={"event_id": event.id, "correlation_id": event.id})
        return event.id

    def observe(self, topic: str, headers: list[tuple[str, bytes]], value: bytes | None) -> None:
        """One record from a watched topic: note progress, finish a canary on its outcome."""
        attrs = {k: v.decode(errors="replace") for k, v in headers if k in ("ce_correlationid", "ce_synthetic")}
        if attrs.get("ce_synthetic") != "true":
            return
        correlation = attrs.get("ce_correlationid", "")
        if correlation not in self.in_flight:
            return
        now = time.time()
        self.metrics.stage_last_seen.labels(topic).set(now)
        flight = self.in_flight[correlation]
        flight.seen.append(topic)
        if topic != self.outcome_topic:
            return
        try:
            event = decode(value, headers, NotificationOutcome)
        except DecodeError as exc:
            log.warning("canary outcome undecodable: %s", exc, extra={"correlation_id": correlation})
            return
        del self.in_flight[correlation]
        status = event.data.status
        if status == "sent":
            self.succeeded += 1
            self.metrics.completed.inc()
            self.metrics.last_success.set(now)
            self.metrics.round_trip.observe(time.monotonic() - flight.published)
            log.info("canary completed", extra={"correlation_id": correlation, "lead_id": event.data.lead_id})
        else:
            self.failures += 1
            self.metrics.failed.labels(f"outcome_{status}").inc()
            log.warning("canary ended %s", status, extra={"correlation_id": correlation})

    def expire(self) -> None:
        now = time.monotonic()
        for correlation, flight in list(self.in_flight.items()):
            if now - flight.published > self.timeout_s:
                del self.in_flight[correlation]
                self.failures += 1
                self.metrics.failed.labels("timeout").inc()
                reached = flight.seen[-1] if flight.seen else "nothing after lead.captured"
                log.warning(
                    "canary timed out after %.0fs; last seen on %s",
                    self.timeout_s,
                    reached,
                    extra={"correlation_id": correlation},
                )

    async def watch(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            # Records wake getmany at once; the timeout only paces expire(), which needs a beat a
            # few times per timeout_s, not twice a second: a slow beat keeps an idle canary idle.
            batch = await consumer.getmany(timeout_ms=int(1000 * min(5.0, max(0.1, self.timeout_s / 4))))
            for tp, msgs in batch.items():
                for msg in msgs:
                    self.observe(tp.topic, [(k, bytes(v)) for k, v in (msg.headers or ())], msg.value)
            self.expire()


def watch_settings(settings: OpsSettings) -> OpsSettings:
    """The settings the watching consumer is made with: an idle fetch waits at least
    ``WATCH_IDLE_FETCH_WAIT_MS`` (longer if ``KAFKA_FETCH_IDLE_WAIT_MS`` says so)."""
    wait_ms = max(settings.kafka_fetch_idle_wait_ms, WATCH_IDLE_FETCH_WAIT_MS)
    return settings.model_copy(update={"kafka_fetch_idle_wait_ms": wait_ms})


async def run_canary(
    settings: OpsSettings,
    *,
    interval_s: float = 30.0,
    timeout_s: float = 120.0,
    count: int | None = None,
    host: str = "127.0.0.1",
    port: int = 9105,
    registry: CollectorRegistry | None = None,
    canary: Canary | None = None,
) -> int:
    """Run until ``count`` canaries ended (exit 0 only if all succeeded), or forever."""
    registry = registry or CollectorRegistry()
    canary = canary or Canary(settings, CanaryMetrics(registry), timeout_s=timeout_s)
    producer = make_producer(settings)
    consumer = plain_consumer(watch_settings(settings))
    await producer.start()
    await consumer.start()
    runner = None
    watcher: asyncio.Task[None] | None = None
    try:
        if port:

            async def ready() -> dict[str, bool]:
                return {"watching": watcher is not None and not watcher.done()}

            runner = await serve_ops(canary.metrics.registry, ready, host, port)
        await canary.start_watching(consumer)
        watcher = asyncio.create_task(canary.watch(consumer))
        sent = 0
        while count is None or sent < count:
            await canary.publish_one(producer)
            sent += 1
            if count is not None and sent >= count:
                break
            await asyncio.sleep(interval_s)
        while canary.in_flight:
            if watcher.done():
                watcher.result()
            await asyncio.sleep(0.1)
        return 0 if canary.failures == 0 else 1
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if runner is not None:
            await runner.cleanup()
        await consumer.stop()
        await producer.stop()


def main() -> None:
    """``python -m leadpipe.canary``: the same as ``leadpipe canary`` (CANARY_* from the environment)."""
    import os

    from leadpipe.runtime.keystore import install_from_env
    from leadpipe.runtime.logs import setup_logging

    settings = OpsSettings()  # KAFKA_BOOTSTRAP_SERVERS from the environment
    setup_logging("canary", level=settings.log_level, json_logs=settings.log_json)
    install_from_env("canary")  # privacy hook: the crypto-shredding keyring (docs/privacy.md)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_canary(
                settings,
                interval_s=float(os.environ.get("CANARY_INTERVAL_S", "30")),
                timeout_s=float(os.environ.get("CANARY_TIMEOUT_S", "120")),
                host=os.environ.get("CANARY_HOST", "127.0.0.1"),
                port=int(os.environ.get("CANARY_PORT", "9105")),
            )
        )


if __name__ == "__main__":
    main()
