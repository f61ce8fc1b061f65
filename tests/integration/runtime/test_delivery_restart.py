"""A worker whose partition stopped delivering restarts that partition's delivery itself
(``leadpipe.runtime.delivery``): a real Faust worker process on the real broker, with two of
its four partitions broken on purpose (``stall_worker``), one record waiting on each."""

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
OFFSET = 3  # records 0..2 of each partition flow; record 3 of partitions 1 and 2 is stranded


def _worker(bootstrap: str, prefix: str, tmp: Path, stall_s: float) -> ManagedProcess:
    return ManagedProcess(
        "stall-worker",
        [sys.executable, "-m", "tests.integration.runtime.stall_worker"],
        tmp / "worker.log",
        env={
            "STALL_PREFIX": prefix,
            "STALL_OFFSET": str(OFFSET),
            "STALL_OUT": str(tmp / "out.txt"),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_DELIVERY_STALL_S": str(stall_s),
            "REDIS_URL": "redis://unused",
            "LEADPIPE_STATE_DIR": str(tmp / "state"),
        },
        cwd=REPO,
    ).start()


def _seen(tmp: Path) -> set[str]:
    out = tmp / "out.txt"
    return set(out.read_text().splitlines()) if out.exists() else set()


async def _until(tmp: Path, want: set[str], timeout_s: float) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while not want <= (seen := _seen(tmp)) and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return seen


async def _run(bootstrap: str, prefix: str, tmp: Path, stall_s: float, wait_s: float) -> set[str]:
    """Records 0..2 on every partition, then (once those were processed) record 3 on every
    partition; returns what the worker processed and restarted within ``wait_s`` after that."""
    topic = f"{prefix}.in"
    await ensure_topics(bootstrap, [TopicSpec(topic, "none", 4)], replication_factor=1)
    worker = _worker(bootstrap, prefix, tmp, stall_s)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for offset in range(OFFSET + 1):
            for p in range(4):
                await producer.send_and_wait(topic, b"x", key=b"k", partition=p)
            if offset == OFFSET - 1:
                first = {f"{p} {o}" for p in range(4) for o in range(OFFSET)}
                seen = await _until(tmp, first, 90)
                assert first <= seen, (sorted(seen), (tmp / "worker.log").read_text()[-3000:])
        # Partitions 0 and 3 get their record 3 at once; 1 and 2 only if their delivery restarts.
        return await _until(tmp, {f"{p} {OFFSET}" for p in range(4)}, wait_s)
    finally:
        await producer.stop()
        worker.stop()


async def test_a_partition_that_stopped_delivering_is_restarted_and_its_record_processed(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    seen = await _run(kafka_bootstrap, f"stall-{unique}", tmp_path, stall_s=2, wait_s=60)
    log = (tmp_path / "worker.log").read_text()
    assert {f"{p} {OFFSET}" for p in range(4)} <= seen, (sorted(seen), log[-4000:])
    assert {f"restart stall-{unique}.in 1", f"restart stall-{unique}.in 2"} <= seen, sorted(seen)
    assert f"stall-{unique}.in partition 1 stopped delivering" in log
    assert "fetched records held by the client: yes" in log  # partition 2's cause, as logged


async def test_without_the_restart_the_broken_partitions_stay_stranded(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    # The control: the same faults with the restart an hour away. The healthy partitions' record
    # 3 arrives; the broken ones' does not (the faults above are real stalls).
    seen = await _run(kafka_bootstrap, f"stall-{unique}", tmp_path, stall_s=3600, wait_s=8)
    assert {f"0 {OFFSET}", f"3 {OFFSET}"} <= seen, sorted(seen)
    assert not {f"1 {OFFSET}", f"2 {OFFSET}"} & seen, sorted(seen)
    assert not any(line.startswith("restart") for line in seen)
