"""The raw baseline for the pipeline benchmark: a bare aiokafka chain with the same number of
hops and the same payloads as leadpipe (captured -> scored -> requested -> outcome), each hop
consume -> pydantic-validate -> build the next event -> encode -> produce, and nothing else."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from leadpipe.runtime.kafka import new_topic
from leadpipe.runtime.settings import ServiceSettings
from schemas import LeadCaptured, LeadScored, NotificationOutcome, NotificationRequested, decode, encode, new_event
from schemas.identity import identity_key
from services.ingest.config import FORMS_DIR
from services.ingest.domain.forms import FormConfig, Submitter, build_capture

HOPS = ("captured", "scored", "requested", "outcome")
#: The services' consumers wait this long per fetch (KAFKA_FETCH_MAX_WAIT_MS): the same here.
FETCH_MAX_WAIT_MS = ServiceSettings.model_fields["kafka_fetch_max_wait_ms"].default


#: The demo form's fields for a grade-A lead (Director, 500-employee software company in the
#: served area, stated need, urgent, 40 seats): the pipeline benchmark posts exactly this.
FORM_FIELDS = {
    "first_name": "Dana",
    "company": "Example Corp",
    "job_title": "Director of Operations",
    "country": "US",
    "seats": "40",
    "need": "replace spreadsheets",
    "timeline": "this quarter",
    "marketing_consent": "yes",
}


def form_body(i: int, run: str, *, email_domain: str = "example.com") -> dict[str, str]:
    """The JSON body of one demo-form post: a new grade-A lead per ``(i, run)``."""
    return FORM_FIELDS | {"email": f"lead{i}-{run}@{email_domain}", "last_name": f"Bench{i}"}


@functools.cache
def demo_form() -> FormConfig:
    return FormConfig.from_mapping(yaml.safe_load((FORMS_DIR / "demo.yaml").read_text()))


def captured_payload(i: int, *, run: str = "", email_domain: str = "example.com") -> LeadCaptured:
    """The ``lead.captured`` ingest builds when ``form_body(i, run)`` is posted to the demo form
    (its own form mapping code), so the raw chain and the pipeline carry the same payloads."""
    body = form_body(i, run or uuid.uuid4().hex[:8], email_domain=email_domain)
    submitter = Submitter("127.0.0.1", "python-httpx/bench", None)
    return build_capture(demo_form(), body, capture_id=str(uuid.uuid4()), now=datetime.now(UTC), submitter=submitter)


def _scored(cap: LeadCaptured, event_id: str) -> LeadScored:
    now = datetime.now(UTC)
    return LeadScored.model_validate(
        {
            "lead_id": "ld_" + identity_key(email=cap.identity.email)[3:],
            "scored_at": now,
            "model_version": "raw",
            "fit_score": 70.0,
            "engagement_score": 0.0,
            "score": 70.0,
            "grade": "A",
            "reasons": [{"rule_id": "seniority.director", "description": "Director", "points": 15, "component": "fit"}],
            "profile": {"email": cap.identity.email, "full_name": "Dana", "company": cap.person.company},
            "capture": {
                "source_kind": "web_form",
                "first_captured_at": cap.captured_at,
                "last_captured_at": cap.captured_at,
            },
            "trigger": {"event_id": event_id, "event_type": "dev.leadpipe.lead.captured"},
        }
    )


def _requested(scored: LeadScored) -> NotificationRequested:
    return NotificationRequested.model_validate(
        {
            "notification_id": f"n-{scored.lead_id}-{uuid.uuid4().hex[:6]}",
            "lead_id": scored.lead_id,
            "audience": "rep",
            "channel": "email",
            "recipient": {"address": "rep@sales.example", "rep_id": "rep-1"},
            "template": "rep_alert",
            "variables": {
                "lead": {
                    "name": scored.profile.full_name,
                    "company": scored.profile.company,
                    "title": "Director of Operations",
                    "grade": scored.grade,
                    "score": scored.score,
                    "reasons": [r.description for r in scored.reasons],
                    "source": "web_form",
                },
                "accept_by": datetime.now(UTC).isoformat(),
            },
            "requested_at": datetime.now(UTC),
            "lead_captured_at": scored.capture.first_captured_at,
        }
    )


def _outcome(req: NotificationRequested) -> NotificationOutcome:
    return NotificationOutcome(
        notification_id=req.notification_id,
        lead_id=req.lead_id,
        status="sent",
        channel=req.channel,
        audience=req.audience,
        attempts=1,
        completed_at=datetime.now(UTC),
    )


async def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [new_topic(n, partitions) for n in names if n not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def _hop(bootstrap: str, src: str, dst: str, step: Any, group: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        rebalance_timeout_ms=10_000,
        session_timeout_ms=10_000,
        max_poll_interval_ms=10_000,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                for r in records:
                    event = decode(r.value, list(r.headers))
                    out = new_event(step(event), source="/raw", subject=event.subject, cause=event)
                    rec = encode(out)
                    await producer.send(dst, rec.value, key=rec.key, headers=rec.headers)
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


async def run(bootstrap: str, n: int, *, rate: float | None = None, partitions: int = 6) -> dict[str, Any]:
    """Push ``n`` captures through the raw chain; ``rate`` per second, or as fast as possible.

    Latencies are measured two ways: ``latencies_s`` from the send to the outcome's arrival at
    the sink consumer (monotonic clock), ``latencies_ts_s`` from the send (wall clock) to the
    outcome record's CreateTime, which its producer stamps as it sends it (the pipeline
    benchmark uses the same). ``events_per_s`` is outcomes / (last arrival - first send)."""
    prefix = f"raw-{uuid.uuid4().hex[:6]}"
    run_id = prefix[4:]
    topics = [f"{prefix}.{h}" for h in HOPS]
    await _create_topics(bootstrap, topics, partitions)
    stop = asyncio.Event()
    steps = [
        lambda e: _scored(e.data, e.id),
        lambda e: _requested(e.data),
        lambda e: _outcome(e.data),
    ]
    hops = [
        asyncio.create_task(_hop(bootstrap, topics[i], topics[i + 1], steps[i], f"{prefix}-h{i}", stop))
        for i in range(3)
    ]
    sink = AIOKafkaConsumer(
        topics[-1],
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await sink.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    await asyncio.sleep(6)  # let the three groups join before the clock starts
    sent_at: dict[str, tuple[float, float]] = {}
    latencies: list[float] = []
    ts_latencies: list[float] = []
    late = 0

    async def inject() -> None:
        nonlocal late
        t0 = time.perf_counter()
        for i in range(n):
            cap = captured_payload(i, run=run_id)
            ev = new_event(cap, source="/raw", subject=identity_key(email=cap.identity.email))
            rec = encode(ev)
            sent_at[ev.correlationid or ev.id] = (time.perf_counter(), time.time())
            await producer.send(topics[0], rec.value, key=rec.key, headers=rec.headers)
            if rate:
                delay = t0 + (i + 1) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    late += 1
        await producer.flush()

    start = time.perf_counter()
    injector = asyncio.create_task(inject())
    deadline = start + max(120.0, n / 50)
    last = start
    while len(latencies) < n and time.perf_counter() < deadline:
        for records in (await sink.getmany(timeout_ms=200)).values():
            now = time.perf_counter()
            for r in records:
                corr = dict(r.headers).get("ce_correlationid", b"").decode()
                if corr in sent_at:
                    mono, wall = sent_at[corr]
                    latencies.append(now - mono)
                    ts_latencies.append(r.timestamp / 1000 - wall)
                    last = now
    elapsed = last - start
    await injector
    stop.set()
    await asyncio.gather(*hops)
    await sink.stop()
    await producer.stop()
    return {
        "events": len(latencies),
        "sent": n,
        "seconds": elapsed,
        "events_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "late_sends": late,
        "latencies_s": latencies,
        "latencies_ts_s": ts_latencies,
    }
