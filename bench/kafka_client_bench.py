"""What the Kafka client costs per record: aiokafka, as the services make their consumers and
producers, beside librdkafka (confluent-kafka) on the same broker, in one run.

    .venv/bin/python bench/kafka_client_bench.py [--topics 6] [--partitions 6] [--rate 50]
                                                 [--records 1000] [--rounds 3] [--json out.json]

One broker (Apache Kafka, one node) on a free port; ``--topics`` topics of ``--partitions``
partitions (a worker's assignment). Two measures, each in a process of its own, per client:

- **consume**: a consumer assigned every partition reads ``--records`` records of 300 bytes
  that this process sends to random partitions at ``--rate`` a second (open loop): most fetches
  carry one record, as in a worker at moderate load. aiokafka's is ``make_consumer``'s (fetch
  sessions on, the services' default), on uvloop as the services run;
- **produce**: a producer sends ``--records`` records to random partitions at ``--rate`` a
  second, waiting for each one's ack (acks=all, idempotent, no linger), as a service publishes
  at moderate load. aiokafka's is ``make_producer``'s, on uvloop as the services run.

Per record, over the measured window: the client process's CPU (every thread: librdkafka does its
I/O on threads of its own) and the broker's. aiokafka is the baseline; the ratio of librdkafka to
it in the same round is the number to compare. A first run of each, not counted, warms the
broker's JIT; then the rounds alternate which client goes first. The machine's other load is not
controlled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fetch_session_bench import consume as aiokafka_consume
from bench.fetch_session_bench import create_topics, produce, run_measured
from leadpipe.devstack.kafka import start_broker
from leadpipe.devstack.processes import free_port, wait_for_port

CLIENTS = ("aiokafka", "librdkafka")
VALUE = b"x" * 300


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def librdkafka_consume(bootstrap: str, topics: list[str], partitions: int, count: int) -> dict[str, Any]:
    """The consumer's side with librdkafka: ready once positioned at every partition's end, then
    reads ``count`` records."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-client-bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, OFFSET_END) for t in topics for p in range(partitions)])
    settle = time.monotonic() + 2.0  # positioned, its first fetches out: count from a steady state
    while time.monotonic() < settle:
        consumer.consume(num_messages=100, timeout=0.2)
    cpu0 = _cpu_s()
    print("ready", flush=True)
    got = 0
    while got < count:
        got += sum(1 for m in consumer.consume(num_messages=500, timeout=1.0) if m.error() is None)
    cpu_s = _cpu_s() - cpu0
    consumer.close()
    return {"records": got, "cpu_s": cpu_s}


def _paced(count: int, rate: float) -> Any:
    start = time.monotonic()
    for n in range(count):
        yield start + n / rate - time.monotonic()


async def aiokafka_produce(
    bootstrap: str, topics: list[str], partitions: int, count: int, rate: float
) -> dict[str, Any]:
    """A producer as the services make it (``make_producer``), each record's ack awaited."""
    from leadpipe.runtime.kafka import make_producer
    from leadpipe.runtime.settings import ServiceSettings

    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused",
                               leadpipe_state_dir=Path(tempfile.mkdtemp()))  # fmt: skip
    producer = make_producer(settings)
    await producer.start()
    try:
        for topic in topics:  # metadata and the idempotent producer's id first
            await producer.send_and_wait(topic, VALUE, partition=0)
        _ready()
        cpu0 = _cpu_s()
        for delay in _paced(count, rate):
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send_and_wait(random.choice(topics), VALUE, partition=random.randrange(partitions))
        return {"records": count, "cpu_s": _cpu_s() - cpu0}
    finally:
        await producer.stop()


def librdkafka_produce(bootstrap: str, topics: list[str], partitions: int, count: int, rate: float) -> dict[str, Any]:
    """The same with librdkafka: each record's delivery report waited for before the next."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
    delivered: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        delivered.append(err)

    for topic in topics:
        producer.produce(topic, VALUE, partition=0, on_delivery=report)
    producer.flush(30)
    if len(delivered) != len(topics) or any(delivered):
        raise RuntimeError(f"librdkafka's first sends failed: {delivered}")
    _ready()
    cpu0 = _cpu_s()
    for delay in _paced(count, rate):
        if delay > 0:
            time.sleep(delay)
        before = len(delivered)
        producer.produce(random.choice(topics), VALUE, partition=random.randrange(partitions), on_delivery=report)
        while len(delivered) == before:
            producer.poll(0.05)
        if delivered[-1] is not None:
            raise RuntimeError(f"librdkafka: a send failed: {delivered[-1]}")
    return {"records": count, "cpu_s": _cpu_s() - cpu0}


def _ready() -> None:
    """Tells the bench the client is set up, then waits for its go (the bench reads the broker's
    CPU in between)."""
    print("ready", flush=True)
    sys.stdin.readline()


def measure(
    bootstrap: str, broker_pid: int, topics: list[str], a: argparse.Namespace, what: str, client: str
) -> dict[str, Any]:
    """One client's run of ``what`` (consume or produce) in a process of its own."""
    cmd = [sys.executable, __file__, f"--{what}", client, "--bootstrap", bootstrap, "--topic-list", ",".join(topics),
           "--partitions", str(a.partitions), "--records", str(a.records), "--rate", str(a.rate)]  # fmt: skip

    def drive(proc: subprocess.Popen[str]) -> None:
        if what == "consume":
            asyncio.run(produce(bootstrap, topics, a.partitions, a.records, a.rate))
        else:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    result, broker_s, wall = run_measured(cmd, broker_pid, f"{client} {what}r", drive, a.records / a.rate + 120)
    n = result["records"]
    return {
        "what": what,
        "client": client,
        "records": n,
        "seconds": round(wall, 2),
        "client_us_per_record": round(result["cpu_s"] / n * 1e6, 1),
        "broker_us_per_record": round(broker_s / n * 1e6, 1),
    }


def summarise(rows: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Medians per measure and client, and librdkafka / aiokafka per round."""
    out: dict[str, Any] = {}
    for what in ("consume", "produce"):
        mine = [r for r in rows if r["what"] == what]
        medians = {}
        for client in CLIENTS:
            theirs = [r for r in mine if r["client"] == client]
            medians[client] = {
                k: statistics.median(r[k] for r in theirs) for k in ("client_us_per_record", "broker_us_per_record")
            }
        ratios = {}
        for key in ("client_us_per_record", "broker_us_per_record"):
            per_round = []
            for n in range(1, rounds + 1):
                pair = {r["client"]: r[key] for r in mine if r["round"] == n}
                per_round.append(round(pair["librdkafka"] / pair["aiokafka"], 3))
            ratios[key] = per_round
        out[what] = {"median": medians, "librdkafka_over_aiokafka": ratios}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topics", type=int, default=6)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--rate", type=float, default=50.0, help="records a second")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=300, help="records of each uncounted first run")
    p.add_argument("--json", type=Path)
    p.add_argument("--consume", choices=CLIENTS, help=argparse.SUPPRESS)
    p.add_argument("--produce", choices=CLIENTS, help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", help=argparse.SUPPRESS)
    p.add_argument("--topic-list", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.consume or a.produce:
        topics = a.topic_list.split(",")
        if a.consume == "aiokafka":  # on uvloop, as the services run (WORKER_UVLOOP)
            result = uvloop.run(aiokafka_consume(a.bootstrap, topics, a.partitions, a.records, True))
        elif a.consume == "librdkafka":
            result = librdkafka_consume(a.bootstrap, topics, a.partitions, a.records)
        elif a.produce == "aiokafka":
            result = uvloop.run(aiokafka_produce(a.bootstrap, topics, a.partitions, a.records, a.rate))
        else:
            result = librdkafka_produce(a.bootstrap, topics, a.partitions, a.records, a.rate)
        print(json.dumps(result), flush=True)
        return 0

    work = Path(tempfile.mkdtemp(prefix="kafka-client-bench-"))
    port = free_port()
    broker = start_broker(port, work / "broker.log")
    rows = []
    try:
        wait_for_port(port, timeout_s=60)
        bootstrap = f"127.0.0.1:{port}"
        topics = [f"kcb.t{n}" for n in range(a.topics)]
        asyncio.run(create_topics(bootstrap, topics, a.partitions))
        warm = argparse.Namespace(**vars(a) | {"records": a.warmup})
        for what in ("consume", "produce"):
            for client in CLIENTS:
                measure(bootstrap, broker.pid, topics, warm, what, client)
        for n in range(1, a.rounds + 1):
            for what in ("consume", "produce"):
                for client in CLIENTS if n % 2 else tuple(reversed(CLIENTS)):
                    row = measure(bootstrap, broker.pid, topics, a, what, client) | {"round": n}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        broker.stop()
    summary = summarise(rows, a.rounds)
    print(f"\n{a.topics} topics x {a.partitions} partitions, {a.records} records at {a.rate:g}/s, CPU per record:")
    print(f"{'':10}{'':12}{'client us':>11}{'broker us':>11}   librdkafka / aiokafka per round (client)")
    for what, s in summary.items():
        for client in CLIENTS:
            m = s["median"][client]
            ratio = s["librdkafka_over_aiokafka"]["client_us_per_record"] if client == "librdkafka" else ""
            print(f"{what:10}{client:12}{m['client_us_per_record']:>11}{m['broker_us_per_record']:>11}   {ratio}")
    if a.json:
        a.json.write_text(json.dumps({"config": vars(a) | {"json": str(a.json)}, "rounds": rows, "summary": summary},
                                     indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
