"""What incremental fetch sessions (``KAFKA_FETCH_SESSIONS``, KIP-227) save a consumer and the
broker, beside the baseline of the same consumer without them, in one run on a fresh broker.

    .venv/bin/python bench/fetch_session_bench.py [--topics 6] [--partitions 6] [--rate 50]
                                                  [--records 1500] [--rounds 4] [--json out.json]

One broker (Apache Kafka, one node) on a free port; ``--topics`` topics of ``--partitions``
partitions (a worker's assignment: nurture has 36 of its own). Each round runs a consumer
(``leadpipe.runtime.kafka.make_consumer``, as the services' plain consumers are made) in a
process of its own, assigned every partition, with sessions off (the baseline: aiokafka's own
fetches, every partition in each) and then on, in turn. The bench process sends ``--records``
records of 300 bytes to random partitions at ``--rate`` a second (open loop), as records reach a
worker at moderate load: most fetches carry one record. Per record, over the window from the
consumer being ready to its last record: the consumer process's CPU, the broker's (which also
serves the bench's produce requests, the same in both), and the consumer's fetches (and the
partitions those listed). A first run, not counted, warms the broker's JIT; then the rounds
alternate which goes first. The ratio of each to the baseline's in the same round is the number
to compare; the machine's other load is not controlled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proc_cpu import tree_cpu_s
from leadpipe.devstack.kafka import start_broker
from leadpipe.devstack.processes import free_port, wait_for_port


async def consume(bootstrap: str, topics: list[str], partitions: int, count: int, sessions: bool) -> dict[str, Any]:
    """The consumer's side (run in its own process): ready once positioned at every partition's end,
    then reads ``count`` records and reports its CPU and fetches."""
    from aiokafka import TopicPartition
    from aiokafka.protocol.fetch import FetchRequest

    from leadpipe.runtime.kafka import make_consumer
    from leadpipe.runtime.settings import ServiceSettings

    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused",
                               leadpipe_state_dir=Path(tempfile.mkdtemp()), kafka_fetch_sessions=sessions)  # fmt: skip
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    fetches = {"requests": 0, "partitions": 0}
    send = consumer._client.send

    async def counting(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, FetchRequest):
            fetches["requests"] += 1
            fetches["partitions"] += sum(len(ps) for _, ps in request.topics)
        return await send(node_id, request, *args, **kwargs)

    consumer._client.send = counting  # type: ignore[method-assign]
    tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    await asyncio.sleep(1.0)  # the first (full) fetch is out: count from a steady state
    fetches.update(requests=0, partitions=0)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    print("ready", flush=True)
    got = 0
    while got < count:
        batches = await consumer.getmany(timeout_ms=1000)
        got += sum(len(records) for records in batches.values())
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await consumer.stop()
    cpu_s = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    return {"records": got, "cpu_s": cpu_s, **fetches}


async def produce(bootstrap: str, topics: list[str], partitions: int, records: int, rate: float) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    value = os.urandom(150).hex().encode()
    start = time.monotonic()
    try:
        for n in range(records):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(random.choice(topics), value, partition=random.randrange(partitions))
        await producer.flush()
    finally:
        await producer.stop()


async def create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    from leadpipe.runtime.kafka import ensure_topics
    from schemas.topics import TopicSpec

    await ensure_topics(bootstrap, [TopicSpec(t, "bench", partitions) for t in topics])


def run_measured(
    cmd: list[str], broker_pid: int, name: str, drive: Callable[[subprocess.Popen[str]], None], timeout_s: float
) -> tuple[dict[str, Any], float, float]:
    """Runs a measuring client process (``cmd``): waits for its "ready", reads the broker's CPU,
    ``drive``s it (sends it records, or its go), and waits for the JSON line it ends with.
    Returns that result, the broker's CPU seconds and the wall seconds in between. A client that
    does not get ready, or exits non-zero, stops the run with a ``RuntimeError`` naming it
    (``name``; its traceback is on stderr); it is never left running."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the {name} did not get ready: {line!r}")
        broker0, t0 = tree_cpu_s(broker_pid), time.monotonic()
        drive(proc)
        out, _ = proc.communicate(timeout=timeout_s)
        broker_s, wall = tree_cpu_s(broker_pid) - broker0, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the {name} failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1]), broker_s, wall


def one_round(
    bootstrap: str, broker_pid: int, topics: list[str], a: argparse.Namespace, sessions: bool
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--consume", bootstrap, "--topic-list", ",".join(topics),
           "--partitions", str(a.partitions), "--records", str(a.records), "--sessions", "on" if sessions else "off"]  # fmt: skip
    result, broker_s, wall = run_measured(
        cmd, broker_pid, f"consumer (sessions {'on' if sessions else 'off'})",
        lambda _proc: asyncio.run(produce(bootstrap, topics, a.partitions, a.records, a.rate)), timeout_s=120,
    )  # fmt: skip
    n = result["records"]
    return {
        "sessions": sessions,
        "records": n,
        "seconds": round(wall, 2),
        "consumer_us_per_record": round(result["cpu_s"] / n * 1e6, 1),
        "broker_us_per_record": round(broker_s / n * 1e6, 1),
        "fetches_per_record": round(result["requests"] / n, 3),
        "partitions_per_fetch": round(result["partitions"] / max(result["requests"], 1), 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topics", type=int, default=6)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--rate", type=float, default=50.0, help="records a second")
    p.add_argument("--records", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500, help="records of the uncounted first run")
    p.add_argument("--json", type=Path)
    p.add_argument("--consume", help=argparse.SUPPRESS)
    p.add_argument("--topic-list", help=argparse.SUPPRESS)
    p.add_argument("--sessions", choices=["on", "off"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.consume:
        result = asyncio.run(consume(a.consume, a.topic_list.split(","), a.partitions, a.records, a.sessions == "on"))
        print(json.dumps(result), flush=True)
        return 0

    work = Path(tempfile.mkdtemp(prefix="fetch-session-bench-"))
    port = free_port()
    broker = start_broker(port, work / "broker.log")
    try:
        wait_for_port(port, timeout_s=60)
        bootstrap = f"127.0.0.1:{port}"
        topics = [f"fsb.t{n}" for n in range(a.topics)]
        asyncio.run(create_topics(bootstrap, topics, a.partitions))
        # A warm-up round, not counted: the broker's JIT compiles its fetch and produce paths.
        one_round(bootstrap, broker.pid, topics, argparse.Namespace(**vars(a) | {"records": a.warmup}), False)
        rows = []
        for r in range(a.rounds):
            # Each round's two runs in turn, first one and then the other first: the machine's
            # load drifts, and a run after another is not the same as one after a pause.
            for sessions in (False, True) if r % 2 == 0 else (True, False):
                row = one_round(bootstrap, broker.pid, topics, a, sessions) | {"round": r + 1}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        broker.stop()
    print(f"\n{a.topics} topics x {a.partitions} partitions, {a.records} records at {a.rate:g}/s, per record:")
    print(f"{'':22}{'consumer CPU us':>16}{'broker CPU us':>15}{'fetches':>9}{'partitions/fetch':>18}")
    summary = {}
    for sessions in (False, True):
        mine = [r for r in rows if r["sessions"] is sessions]
        label = "sessions on" if sessions else "baseline (off)"
        med = {k: statistics.median(r[k] for r in mine) for k in
               ("consumer_us_per_record", "broker_us_per_record", "fetches_per_record", "partitions_per_fetch")}  # fmt: skip
        summary[label] = med
        print(f"{label:22}{med['consumer_us_per_record']:>16}{med['broker_us_per_record']:>15}"
              f"{med['fetches_per_record']:>9}{med['partitions_per_fetch']:>18}")  # fmt: skip
    ratios = {}
    for key in ("consumer_us_per_record", "broker_us_per_record"):
        per_round = []
        for r in range(a.rounds):
            pair = {row["sessions"]: row for row in rows if row["round"] == r + 1}
            per_round.append(pair[True][key] / pair[False][key])
        ratios[key] = [round(x, 3) for x in per_round]
    print(f"on / off, per round: consumer {ratios['consumer_us_per_record']}, broker {ratios['broker_us_per_record']}")
    if a.json:
        a.json.write_text(json.dumps({"config": vars(a) | {"json": str(a.json)}, "rounds": rows,
                                      "median": summary, "ratio_on_off": ratios}, indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
