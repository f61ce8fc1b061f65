"""The exporter as a process against the session broker: lag and DLQ depth on /metrics."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from bench.prom_text import samples
from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.ops.reader import plain_consumer
from leadpipe.ops.settings import OpsSettings
from schemas.codec import Record
from tests.integration.ops.helpers import make_topics, produce


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    async def go() -> None:
        consumer = plain_consumer(OpsSettings(kafka_bootstrap_servers=bootstrap), group_id=group)
        await consumer.start()
        try:
            tps = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
            consumer.assign(list(tps))
            await consumer.commit(tps)
        finally:
            await consumer.stop()

    asyncio.run(go())


def _scrape_until_at_least(url: str, name: str, least: float, timeout_s: float = 20.0) -> float:
    """Until the unlabelled sample ``name`` on the page reaches ``least``; its value."""
    deadline = time.monotonic() + timeout_s
    value: float | None = None
    while time.monotonic() < deadline:
        for labels, v in samples(httpx.get(url, timeout=5).text, name):
            if not labels:
                value = v
        if value is not None and value >= least:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{name} never reached {least} (last seen: {value})")


def _scrape_until(url: str, wanted: list[str], timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(url, timeout=5).text
        if all(w in text for w in wanted):
            return text
        time.sleep(0.3)
    missing = [w for w in wanted if w not in text]
    raise AssertionError(f"never saw {missing} in:\n{text}")


def test_exporter_serves_consumer_lag_and_dlq_depth(registry_topics: str, unique: str, tmp_path: Path) -> None:
    topic = f"opsexp.{unique}.v1"
    group = f"ops-exp-{unique}"
    make_topics(registry_topics, topic, partitions=1)
    produce(registry_topics, topic, [Record(b"k", b"v%d" % i, []) for i in range(4)])
    produce(registry_topics, f"{topic}.dlq", [Record(b"k", b"dead", [("dlq_topic", topic.encode())])])
    _commit(registry_topics, group, topic, {0: 1})

    port = free_port()
    proc = ManagedProcess(
        "exporter",
        [sys.executable, "-m", "leadpipe.exporter"],
        tmp_path / "exporter.log",
        env={
            "KAFKA_BOOTSTRAP_SERVERS": registry_topics,
            "EXPORTER_PORT": str(port),
            "EXPORTER_INTERVAL_S": "0.5",
            "EXPORTER_GROUPS": group,
            "EXPORTER_TOPICS": f"{topic},{topic}.dlq",
        },
    ).start()
    try:
        wait_for_port(port, timeout_s=20, proc=proc.proc)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        text = _scrape_until(
            f"{base}/metrics",
            [
                f'leadpipe_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 3.0',
                f'leadpipe_topic_records{{topic="{topic}.dlq"}} 1.0',
                f'leadpipe_topic_records{{topic="{topic}"}} 4.0',
            ],
        )
        assert "leadpipe_exporter_last_success_timestamp_seconds" in text
        assert httpx.get(f"{base}/readyz").status_code == 200

        _commit(registry_topics, group, topic, {0: 4})
        _scrape_until(
            f"{base}/metrics", [f'leadpipe_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 0.0']
        )
    finally:
        proc.stop()
    assert "@" not in (tmp_path / "exporter.log").read_text()


def test_exporter_is_alive_but_not_ready_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    dead_broker = f"127.0.0.1:{free_port()}"
    proc = ManagedProcess(
        "exporter",
        [sys.executable, "-m", "leadpipe.exporter"],
        tmp_path / "exporter.log",
        env={"KAFKA_BOOTSTRAP_SERVERS": dead_broker, "EXPORTER_PORT": str(port), "EXPORTER_INTERVAL_S": "0.5"},
    ).start()
    try:
        wait_for_port(port, timeout_s=20, proc=proc.proc)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"broker": False}
        # Failed collections are counted (one every 0.5 s here: an exact count would race the scrapes).
        _scrape_until_at_least(f"{base}/metrics", "leadpipe_exporter_errors_total", 1)
    finally:
        proc.stop()
