"""Scoring stage throughput beside a raw aiokafka hop, in the same run on a fresh broker.

    .venv/bin/python bench/scoring_bench.py [--events 10000] [--partitions 6] [--workers 1,2] [--repeat 3]
                                            [--json bench/results/scoring.json]

One broker and one Redis for the run; the input (one ``lead.captured`` per new lead, so each
input yields exactly one output) is loaded once. Each repeat measures the raw hop, then each
worker count, one after the other (so a repeat's ratio compares runs minutes apart, not hours):
- raw hop: one aiokafka consumer -> decode (pydantic validate) -> encode -> aiokafka producer;
- scoring: N ``python -m services.scoring`` processes (Faust, Redis state, rules) in one group,
  each with its own group id, output topic and Redis prefix.

A rate is outputs / time, read by a consumer of the output topic, from the first output read
once every worker has consumed (its /metrics say so: the join of a second worker, and the
rebalance it causes, is not timed) to the last output; ``window`` says what share of the
outputs that span covers.
Reported per configuration: the median over repeats of the rate and of the ratio to the
same repeat's raw hop. The machine's other load is not controlled: compare ratios. A worker
that stops producing for 60 s is reported as stalled and left out of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from leadpipe.runtime.kafka import new_topic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leadpipe.devstack.kafka import start_broker  # noqa: E402
from leadpipe.devstack.processes import ManagedProcess, free_port, start_redis, wait_for_port  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402
from schemas.envelope import new_event  # noqa: E402
from schemas.lead_captured.v1 import LeadCaptured  # noqa: E402

TITLES = ("Director of Operations", "VP Sales", "采购经理", "Software Engineer", "Head of IT", "Student")
DOMAINS = ("example.com", "gmail.com", "blueworks.de", "qq.com", "rivalsoft.com", "university.edu")
INPUT = "in.captured"


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
        await admin.create_topics([new_topic(n, partitions if not n.endswith(".dlq") else 1) for n in names])
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, records: list) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    started = time.monotonic()
    try:
        futs = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return len(records) / (time.monotonic() - started)


async def all_consuming(ports: list[int], deadline: float) -> float:
    """When every worker has consumed a record (monotonic time), read from their /metrics.

    (Asking the broker for the group's state instead, while members join, stalls Tansu's
    group coordinator.) A worker that consumed was assigned partitions, so the join of the
    last worker, and the rebalance it causes, is over by then.
    """
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            done = 0
            for port in ports:
                try:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.HTTPError:
                    continue
                done += any(
                    line.startswith("leadpipe_events_consumed_total{") and float(line.rsplit(" ", 1)[1]) > 0
                    for line in text.splitlines()
                )
            if done == len(ports):
                return time.monotonic()
            await asyncio.sleep(0.2)
    raise TimeoutError(f"not every worker of {ports} consumed before the deadline")


async def at_once() -> float:
    return time.monotonic()


class Stalled(Exception):
    """No output for a while before all were seen (Faust on the embedded broker under load)."""


async def watch(
    bootstrap: str,
    topic: str,
    want: int,
    timeout_s: float,
    stable: asyncio.Task[float],
    stall_s: float = 60,
    on_window: Callable[[str], None] | None = None,
) -> dict:
    """Outputs/s on ``topic``, from the first output read once the group is stable to the last one.
    ``on_window("start")`` and ``("end")`` are called as that window opens and closes.

    Records are counted by reading them: Tansu's end offsets count record batches, not records.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        total, at_start, t_start = 0, 0, None
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.monotonic()
            got = sum(len(msgs) for msgs in batch.values())
            total += got
            if got:
                last = now
            elif t_start is not None and now - last > stall_s:
                raise Stalled(f"{topic}: no output for {stall_s:.0f}s at {total} of {want}")
            if t_start is None and stable.done() and total > 0:
                t_start, at_start = now, total
                if on_window is not None:
                    on_window("start")
            if total >= want and t_start is not None:
                if on_window is not None:
                    on_window("end")
                span = max(now - t_start, 1e-6)
                return {"rate": (total - at_start) / span, "window": (total - at_start) / total, "seconds": span}
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


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="scoring-bench-"))
        self.procs: list[ManagedProcess] = []
        self.bootstrap = ""

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        proc = ManagedProcess(name, cmd, self.work / f"{name}.log", env=env, cwd=REPO).start()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        while self.procs:
            self.procs.pop().stop()

    async def measure(self, out: str, start: Any) -> dict:
        started, ports = start()
        stable = asyncio.ensure_future(all_consuming(ports, time.monotonic() + 180) if ports else at_once())
        try:
            return await watch(self.bootstrap, out, self.args.events, 900, stable)
        finally:
            stable.cancel()
            for proc in started:
                proc.stop()
                self.procs.remove(proc)

    async def raw(self, r: int) -> dict:
        out, group = f"out.raw.{r}", f"bench-raw-{r}"
        await create(self.bootstrap, [out], self.args.partitions)
        cmd = [sys.executable, __file__, "--raw-hop", self.bootstrap, out, group]
        return await self.measure(out, lambda: ([self.spawn(f"raw-{r}", cmd)], []))

    async def scoring(self, redis_url: str, r: int, workers: int) -> dict:
        out, group = f"out.scored.{r}.{workers}", f"bench-scoring-{r}-{workers}"
        await create(self.bootstrap, [out], self.args.partitions)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": redis_url, "LEADPIPE_STATE_DIR": str(self.work),
            "SCORING_INPUT_TOPICS": f"{INPUT},in.engagement", "SCORING_OUTPUT_TOPIC": out,
            "SCORING_GROUP_ID": group, "SCORING_REDIS_PREFIX": f"bench:{r}:{workers}:",
            "SCORING_STATE_TOPIC": f"scoring.state.{r}.{workers}",
            "KAFKA_PARTITIONS": str(self.args.partitions), "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        wrap = os.environ.get("SCORING_BENCH_WRAP", "")  # e.g. a profiler: "py-spy record -o /tmp/w{n}.txt -f raw --"

        def start() -> tuple[list[ManagedProcess], list[int]]:
            procs, ports = [], []
            for n in range(workers):
                ports.append(free_port())
                cmd = [*wrap.format(n=n).split(), sys.executable, "-m", "services.scoring"]
                procs.append(self.spawn(f"scoring-{r}-{workers}-{n}", cmd, env | {"OPS_PORT": str(ports[-1])}))
            return procs, ports

        return await self.measure(out, start)

    async def run(self) -> dict:
        a = self.args
        bport, rport = free_port(), free_port()
        self.procs.append(start_broker(bport, self.work / "broker.log"))
        self.procs.append(start_redis(rport, self.work / "redis", self.work / "redis.log", appendonly=False))
        wait_for_port(bport, timeout_s=30)
        bootstrap, redis_url = f"127.0.0.1:{bport}", f"redis://127.0.0.1:{rport}/0"
        self.bootstrap = bootstrap
        await create(bootstrap, [INPUT, "in.engagement", f"{INPUT}.dlq"], a.partitions)
        load_rate = await preload(bootstrap, INPUT, make_events(a.events))
        print(f"preloaded {a.events} events on {a.partitions} partitions ({load_rate:,.0f}/s)", flush=True)
        runs: list[dict] = []
        for r in range(a.repeat):
            raw = await self.raw(r)
            print(f"[{r + 1}/{a.repeat}] raw hop: {raw['rate']:,.0f}/s", flush=True)
            for w in a.workers:
                try:
                    res = await self.scoring(redis_url, r, w)
                except Stalled as exc:
                    # Reported, not hidden: the run is left out of the medians and counted.
                    print(f"[{r + 1}/{a.repeat}] scoring {w} worker(s): STALLED ({exc})", flush=True)
                    runs.append({"repeat": r, "workers": w, "raw": raw, "stalled": str(exc)})
                    continue
                ratio = res["rate"] / raw["rate"]
                runs.append({"repeat": r, "workers": w, "raw": raw, "scoring": res, "ratio": ratio})
                print(
                    f"[{r + 1}/{a.repeat}] scoring {w} worker(s): {res['rate']:,.0f}/s, ratio {ratio:.2f} "
                    f"(window {res['window']:.0%} of outputs)",
                    flush=True,
                )
        return {"runs": runs, "preload_rate": load_rate}


def summarise(args: argparse.Namespace, result: dict, load: str) -> dict:
    runs = result["runs"]
    configs = []
    raw_rates = sorted({(r["repeat"], r["raw"]["rate"]) for r in runs})
    for w in args.workers:
        mine = [r for r in runs if r["workers"] == w and "stalled" not in r]
        stalled = sum(1 for r in runs if r["workers"] == w and "stalled" in r)
        if not mine:
            configs.append({"workers": w, "partitions": args.partitions, "stalled": stalled})
            continue
        configs.append(
            {
                "workers": w,
                "partitions": args.partitions,
                "rate_median": statistics.median(r["scoring"]["rate"] for r in mine),
                "ratio_median": statistics.median(r["ratio"] for r in mine),
                "rates": [round(r["scoring"]["rate"]) for r in mine],
                "ratios": [round(r["ratio"], 3) for r in mine],
                "min_window": min(r["scoring"]["window"] for r in mine),
                "stalled": stalled,
            }
        )
    return {
        "command": "bench/scoring_bench.py " + " ".join(sys.argv[1:]),
        "events": args.events,
        "partitions": args.partitions,
        "repeat": args.repeat,
        "raw_median": statistics.median(rate for _, rate in raw_rates),
        "raw_rates": [round(rate) for _, rate in raw_rates],
        "configs": configs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load},
        "runs": runs,
    }


def print_table(summary: dict) -> None:
    print()
    print(f"raw aiokafka hop (median of {summary['repeat']}): {summary['raw_median']:,.0f} events/s "
          f"{summary['raw_rates']}")  # fmt: skip
    print(f"{'config':<28}{'events/s (median)':>18}{'ratio to raw':>14}  per repeat")
    for c in summary["configs"]:
        name = f"scoring, {c['workers']} worker(s), {c['partitions']} part."
        note = f"  ({c['stalled']} run(s) stalled, left out)" if c["stalled"] else ""
        if "rate_median" not in c:
            print(f"{name:<28}{'stalled':>18}{note}")
            continue
        print(f"{name:<28}{c['rate_median']:>18,.0f}{c['ratio_median']:>14.2f}  {c['rates']} {c['ratios']}{note}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--raw-hop":
        asyncio.run(raw_hop(sys.argv[2], INPUT, sys.argv[3], sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", default="1", help="comma-separated worker counts, e.g. 1,2")
    parser.add_argument("--repeat", type=int, default=1, help="measure every configuration this many times")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "scoring.json")
    args = parser.parse_args()
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error("--workers: expected comma-separated numbers, e.g. 1,2")
    if not args.workers or min(args.workers) < 1 or args.events < 1 or args.repeat < 1:
        parser.error("--workers, --events and --repeat must be at least 1")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    bench = Bench(args)
    # Stop the broker, Redis and workers on Ctrl-C or SIGTERM too (they run in their own process groups).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        result = asyncio.run(bench.run())
    finally:
        bench.stop_all()
    summary = summarise(args, result, load)
    print_table(summary)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
