"""Across the process boundary: the real worker (``python -m services.notifier``, default limits)
on the session broker and Redis, delivering to a real SMTP server. A rep flooded with alerts gets
every one promptly; a lead still gets no more than the lead-facing cap."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import ensure_topics, make_producer, publish
from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import TopicSpec
from services.notifier.config import NotifierSettings
from tests.integration.notifier.helpers import request

pytestmark = [pytest.mark.slow]
ALERTS = 100
LEAD_CAP = NotifierSettings.model_fields["notifier_recipient_limit"].default


async def _until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.05)


async def test_a_rep_sent_a_hundred_alerts_in_an_hour_gets_each_within_a_second_while_a_lead_stays_capped(
    registry_topics: str, redis_url: str, smtp: Any, unique: str, tmp_path: Path
):
    # The limits count per clock hour: do not straddle one (the lead's 21st message would go).
    if 3600 - time.time() % 3600 < 60:
        await asyncio.sleep(3600 - time.time() % 3600 + 1)
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
        "NOTIFIER_EMAIL_TRANSPORT": "smtp",
        "NOTIFIER_SMTP_HOST": smtp.host,
        "NOTIFIER_SMTP_PORT": str(smtp.port),
        "NOTIFIER_OUTBOX_DIR": str(tmp_path / "outbox"),
    }  # the recipient limits are the shipped defaults
    worker = ManagedProcess("notifier", [sys.executable, "-m", "services.notifier"], tmp_path / "notifier.log",
                            env=env).start()  # fmt: skip
    producer = make_producer(ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url=redis_url))
    await producer.start()
    requested_at: dict[str, float] = {}
    try:
        await asyncio.to_thread(wait_for_port, ops, "127.0.0.1", 60.0, worker.proc)
        warmup, _ = request(address="warmup@sales.example")
        await publish(producer, warmup, max_bytes=10**6, topic=t["requested"])
        await _until(lambda: smtp.inbox.to("warmup@sales.example"), 60, "the worker's first delivery")

        # A busy day compressed: 100 alerts to one rep, twenty a second.
        for _ in range(ALERTS):
            event, _ = request(address="ana@sales.example")
            requested_at[event.data.notification_id] = event.data.requested_at.timestamp()
            await publish(producer, event, max_bytes=10**6, topic=t["requested"])
            await asyncio.sleep(0.05)
        # And one more than the cap to one lead, in the same hour.
        lead = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "Gus"}}
        for _ in range(LEAD_CAP + 1):
            event, _ = request(address="gus@lead.example", **lead)
            await publish(producer, event, max_bytes=10**6, topic=t["requested"])
        await _until(lambda: len(smtp.inbox.to("ana@sales.example")) >= ALERTS, 30, f"{ALERTS} rep alerts")
        await _until(lambda: len(smtp.inbox.to("gus@lead.example")) >= LEAD_CAP, 30, f"{LEAD_CAP} lead touches")
        await asyncio.sleep(1.0)  # time for a 21st lead message to arrive if the cap did not hold it
    finally:
        await producer.stop()
        worker.stop()

    delays = {}
    for msg, received, (_, rcpts) in zip(smtp.inbox.messages, smtp.inbox.received_at, smtp.inbox.envelopes,
                                         strict=True):  # fmt: skip
        nid = str(msg["X-Leadpipe-Notification-Id"])
        if rcpts == ["ana@sales.example"]:
            delays[nid] = received - requested_at[nid]
    assert sorted(delays) == sorted(requested_at), "an alert was lost or sent twice"
    slowest = max(delays.values())
    assert slowest < 1.0, f"slowest rep alert took {slowest:.2f}s from request to the SMTP server"
    assert len(smtp.inbox.to("gus@lead.example")) == LEAD_CAP  # the lead-facing cap still holds for a lead
    log = (tmp_path / "notifier.log").read_text()
    assert "lead recipient rate limit" in log and "internal recipient rate limit" not in log
