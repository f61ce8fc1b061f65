"""A Faust worker's streams wait for records as long as the fetch's long poll, not Faust's 1 s,
and a partition put back into the fetches ends that wait at once (``faust_compat._Consumer``):
a real worker process (``resume_worker``) on the real broker."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from leadpipe.devstack.processes import ManagedProcess
from leadpipe.runtime.kafka import ensure_topics
from schemas.topics import TopicSpec

REPO = Path(__file__).resolve().parents[3]
RESUME_AFTER_S = 2.0


def _worker(bootstrap: str, prefix: str, tmp: Path, idle_wait_ms: int) -> ManagedProcess:
    return ManagedProcess(
        "resume-worker",
        [sys.executable, "-m", "tests.integration.runtime.resume_worker"],
        tmp / "worker.log",
        env={
            "RESUME_PREFIX": prefix,
            "RESUME_OUT": str(tmp / "out.txt"),
            "RESUME_AFTER_S": str(RESUME_AFTER_S),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_FETCH_IDLE_WAIT_MS": str(idle_wait_ms),
            "REDIS_URL": "redis://unused",
            "LEADPIPE_STATE_DIR": str(tmp / "state"),
        },
        cwd=REPO,
    ).start()


def _lines(tmp: Path) -> list[list[str]]:
    out = tmp / "out.txt"
    return [line.split() for line in out.read_text().splitlines()] if out.exists() else []


async def _until(tmp: Path, what: str, done: object, timeout_s: float) -> list[list[str]]:
    deadline = time.monotonic() + timeout_s
    while not done(lines := _lines(tmp)):  # type: ignore[operator]
        if time.monotonic() > deadline:
            log = (tmp / "worker.log").read_text()[-3000:]
            raise AssertionError(f"the worker did not {what} within {timeout_s:.0f} s: {lines}\n{log}")
        await asyncio.sleep(0.05)
    return lines


async def test_a_resumed_partitions_held_record_is_processed_at_once_not_at_the_end_of_the_wait(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    # The streams' wait is 20 s here: without the wake on resume, the held record would wait
    # for the rest of it (about 18 s) after its partition was resumed.
    topic = f"resume-{unique}.in"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, "none", 2)], replication_factor=1)
    worker = _worker(kafka_bootstrap, f"resume-{unique}", tmp_path, idle_wait_ms=20_000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", partition=1)
        await _until(tmp_path, "process partition 1's first record", lambda ls: ["1", "0"] in [x[:2] for x in ls], 90)
        await producer.send_and_wait(topic, b"pause", partition=0)
        await _until(tmp_path, "pause partition 1", lambda ls: any(x[0] == "paused" for x in ls), 30)
        await producer.send_and_wait(topic, b"held", partition=1)
        lines = await _until(tmp_path, "process the held record", lambda ls: ["1", "1"] in [x[:2] for x in ls], 30)
    finally:
        await producer.stop()
        worker.stop()
    at = {" ".join(x[:-1]): float(x[-1]) for x in lines}
    assert at["1 1"] > at["resumed"], f"the held record was processed before its partition was resumed: {lines}"
    waited = at["1 1"] - at["resumed"]
    assert waited < 1.5, f"the held record waited {waited:.1f} s after its partition was resumed"
