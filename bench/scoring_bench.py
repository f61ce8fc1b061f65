"""Scoring stage throughput beside a raw aiokafka hop, in the same run on a fresh broker.

    .venv/bin/python bench/scoring_bench.py [--events 20000] [--partitions 6] [--workers 1]

Both stages read the same pre-loaded input (one ``lead.captured`` per new lead, so each
input yields exactly one output) and are timed the same way: the output topic's end
offsets are polled, and the sustained rate is outputs / (time of last - time of first).
- raw hop: aiokafka consumer -> decode (pydantic validate) -> encode -> aiokafka producer;
- scoring: ``python -m services.scoring`` worker process(es) (Faust, Redis state, rules).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leadpipe.devstack.processes import ManagedProcess, free_port, start_broker, start_redis, wait_for_port  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402
from schemas.envelope import new_event  # noqa: E402
from schemas.lead_captured.v1 import LeadCaptured  # noqa: E402

TITLES = ("Director of Operations", "VP Sales", "采购经理", "Software Engineer", "Head of IT", "Student")
DOMAINS = ("example.com", "gmail.com", "blueworks.de", "qq.com", "rivalsoft.com", "university.edu")


def make_events(n: int) -> list:
    out = []
    for i in range(n):
        data = LeadCaptured.model_validate(
            {
                "capture_id": f"bench-{i}",
                "source_kind": "web_form",
                "captured_at": "2026-05-04T09:30:00Z",
                "identity": {"email": f"user{i}@{DOMAINS[i % len(DOMAINS)]}", "phone": f"+1415555{i % 10000:04d}"},
                "person": {"job_title": TITLES[i % len(TITLES)], "country": ("US", "DE", "BR", "CN")[i % 4]},
                "qualification": {"need": "replace spreadsheets" if i % 2 else None, "timeline": "this quarter"},
            }
        )
        out.append(encode(new_event(data, source="/bench", subject=f"k{i}", id=f"bench-{i}")))
    return out


async def create(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions if not n.endswith(".dlq") else 1, 1) for n in names])
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, records: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futs = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def watch(bootstrap: str, topic: str, want: int, timeout_s: float) -> float:
    """Sustained outputs/s on ``topic``, between the first and the last output.

    Records are counted by reading them: Tansu's end offsets count record batches, not records.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        first_t, first_n, total = None, 0, 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            total += sum(len(msgs) for msgs in batch.values())
            now = time.monotonic()
            if first_t is None and total > 0:
                first_t, first_n = now, total
            if total >= want:
                assert first_t is not None
                return (total - first_n) / max(now - first_t, 1e-6)
        raise TimeoutError(f"{topic}: {total} of {want} outputs after {timeout_s}s")
    finally:
        await consumer.stop()


async def raw_hop(bootstrap: str, src: str, dst: str, group: str) -> None:
    """The baseline: consume, pydantic-validate, re-serialise, produce (no business logic)."""
    consumer = AIOKafkaConsumer(
        src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=True,
        rebalance_timeout_ms=10000, session_timeout_ms=10000, heartbeat_interval_ms=1000, max_poll_interval_ms=10000,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            futs = []
            for msgs in batch.values():
                for m in msgs:
                    rec = encode(decode(m.value, m.headers))
                    futs.append(await producer.send(dst, rec.value, key=rec.key, headers=rec.headers))
            if futs:
                await asyncio.gather(*futs)
    finally:
        await producer.stop()
        await consumer.stop()


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="scoring-bench-"))
    bport, rport = free_port(), free_port()
    broker = start_broker(bport, work / "broker.log")
    redis = start_redis(rport, work / "redis", work / "redis.log", appendonly=False)
    bootstrap, redis_url = f"127.0.0.1:{bport}", f"redis://127.0.0.1:{rport}/0"
    procs: list[ManagedProcess] = []
    try:
        p = args.partitions
        await create(bootstrap, ["in.captured", "in.engagement", "out.raw", "out.scored", "in.captured.dlq"], p)
        records = make_events(args.events)
        await preload(bootstrap, "in.captured", records)
        print(f"preloaded {len(records)} events on {p} partitions", flush=True)

        raw = ManagedProcess(
            "raw", [sys.executable, __file__, "--raw-hop", bootstrap], work / "raw.log", cwd=REPO
        ).start()
        procs.append(raw)
        raw_rate = await watch(bootstrap, "out.raw", args.events, 300)
        raw.stop()
        print(f"raw aiokafka hop: {raw_rate:,.0f} events/s", flush=True)

        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url, "LEADPIPE_STATE_DIR": str(work),
            "SCORING_INPUT_TOPICS": "in.captured,in.engagement", "SCORING_OUTPUT_TOPIC": "out.scored",
            "SCORING_GROUP_ID": "bench-scoring", "KAFKA_PARTITIONS": str(p), "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        for n in range(args.workers):
            port = free_port()
            w = ManagedProcess(
                f"scoring-{n}", [sys.executable, "-m", "services.scoring"], work / f"scoring-{n}.log",
                env=env | {"OPS_PORT": str(port)}, cwd=REPO,
            ).start()  # fmt: skip
            procs.append(w)
            wait_for_port(port, timeout_s=60, proc=w.proc)
        rate = await watch(bootstrap, "out.scored", args.events, 600)
        print(f"scoring stage ({args.workers} worker(s), {p} partitions): {rate:,.0f} events/s", flush=True)
        print(f"ratio scoring/raw: {rate / raw_rate:.1%}", flush=True)
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()
        broker.stop()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--raw-hop":
        asyncio.run(raw_hop(sys.argv[2], "in.captured", "out.raw", "bench-raw"))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
