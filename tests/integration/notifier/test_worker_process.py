"""The real worker (``python -m services.notifier``) on the session broker and Redis, sending
to a real SMTP server and HTTP provider; killed with SIGKILL mid-run and restarted.

The worker commits offsets only every 60 s here, so after the kill every request it handled
comes back (a true redelivery), and the test publishes one request a second time as well.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import ensure_topics, make_consumer, make_producer, publish
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import decode
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.topics import TopicSpec
from tests.integration.notifier.helpers import engagement, request

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else "")) and (not labels or all(p in line for p in want.split(","))):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _wait_metric(ops: int, name: str, at_least: float, timeout_s: float = 30.0, **labels: str) -> float:
    deadline = time.monotonic() + timeout_s
    value = 0.0
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                value = _metric((await client.get(f"http://127.0.0.1:{ops}/metrics")).text, name, **labels)
            except httpx.HTTPError:
                value = 0.0
            if value >= at_least:
                return value
            await asyncio.sleep(0.2)
    raise AssertionError(f"{name}{labels} stayed at {value} < {at_least} for {timeout_s}s")


async def test_worker_sends_once_across_kill9_retries_500_then_200_and_honours_suppression(
    registry_topics: str, redis_url: str, smtp: Any, provider: Any, unique: str, tmp_path: Path
):
    bootstrap = registry_topics
    t = {name: f"nt.{unique}.{name}" for name in ("requested", "outcome", "engagement", "retry")}
    await ensure_topics(
        bootstrap,
        [TopicSpec(name, "lead id", 2) for name in t.values()] + [TopicSpec(t["requested"] + ".dlq", "same", 1)],
    )
    ops = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "LEADPIPE_STATE_DIR": str(tmp_path / "state"),
        "OPS_PORT": str(ops),
        "KAFKA_PARTITIONS": "2",
        "NOTIFIER_APP_ID": f"notifier-{unique}",
        "NOTIFIER_REDIS_PREFIX": f"notifier:{unique}:",
        "NOTIFIER_REQUESTED_TOPIC": t["requested"],
        "NOTIFIER_OUTCOME_TOPIC": t["outcome"],
        "NOTIFIER_ENGAGEMENT_TOPIC": t["engagement"],
        "NOTIFIER_RETRY_TOPIC": t["retry"],
        "NOTIFIER_COMMIT_INTERVAL_S": "60",
        "NOTIFIER_EMAIL_TRANSPORT": "smtp",
        "NOTIFIER_SMTP_HOST": smtp.host,
        "NOTIFIER_SMTP_PORT": str(smtp.port),
        "NOTIFIER_WEBHOOK_TRANSPORT": "http",
        "NOTIFIER_RETRY_BASE_S": "0.5",
        "NOTIFIER_OUTBOX_DIR": str(tmp_path / "outbox"),
    }

    def start(n: int) -> ManagedProcess:
        argv = [sys.executable, "-m", "services.notifier"]
        proc = ManagedProcess(f"notifier-{n}", argv, tmp_path / f"notifier-{n}.log", env=env).start()
        return proc

    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url=redis_url)
    producer = make_producer(settings)
    await producer.start()
    worker = start(1)
    try:
        await asyncio.to_thread(wait_for_port, ops, "127.0.0.1", 60.0, worker.proc)
        await publish(
            producer,
            engagement("unsubscribed", email="gone@example.com", channel="email"),
            max_bytes=10**6,
            topic=t["engagement"],
        )
        await _wait_metric(ops, "leadpipe_notifier_suppressions_recorded_total", 1)

        provider.script("/hooks/flaky", "500")
        alert, _ = request()
        hook, _ = request(channel="webhook", address=f"{provider.url}/hooks/flaky")
        lead = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "G"}}
        gone, _ = request(address="gone@example.com", **lead)
        for event in (alert, hook, gone):
            await publish(producer, event, max_bytes=10**6, topic=t["requested"])
        await _wait_metric(ops, "leadpipe_notifier_sends_total", 3)

        worker.kill9()
        await publish(producer, alert, max_bytes=10**6, topic=t["requested"])  # nurture sends it again
        worker = start(2)
        await asyncio.to_thread(wait_for_port, ops, "127.0.0.1", 60.0, worker.proc)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{ops}/healthz")).status_code == 200
            ready = await client.get(f"http://127.0.0.1:{ops}/readyz")
            assert ready.json()["checks"] == {
                "redis": True,
                "kafka_producer": True,
                "agent": True,
                "kafka_assigned": True,
            }
        # The three uncommitted requests come back, plus the republished one.
        await _wait_metric(ops, "leadpipe_notifier_duplicate_requests_total", 4)
    finally:
        worker.stop()
        await producer.stop()

    assert [rcpts for _, rcpts in smtp.inbox.envelopes] == [["ana@sales.example"]]
    assert len(provider.accepted("/hooks/flaky")) == 1 and len(provider.received) == 2

    consumer = make_consumer(settings, t["outcome"], group_id=None)
    await consumer.start()
    try:
        found: list[NotificationOutcome] = []
        deadline = time.monotonic() + 15
        while len(found) < 3 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [decode(r.value, r.headers, NotificationOutcome).data for r in records]
        await asyncio.sleep(0.5)
        for records in (await consumer.getmany(timeout_ms=500)).values():
            found += [decode(r.value, r.headers, NotificationOutcome).data for r in records]
    finally:
        await consumer.stop()
    assert Counter(o.notification_id for o in found) == Counter(
        {alert.data.notification_id: 1, hook.data.notification_id: 1, gone.data.notification_id: 1}
    )
    by_id = {o.notification_id: o for o in found}
    assert (by_id[alert.data.notification_id].status, by_id[alert.data.notification_id].attempts) == ("sent", 1)
    assert (by_id[hook.data.notification_id].status, by_id[hook.data.notification_id].attempts) == ("sent", 2)
    assert by_id[gone.data.notification_id].status == "suppressed"
