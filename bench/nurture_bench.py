"""Nurture stage throughput beside a raw aiokafka hop on the same records, in one run on a fresh broker.

    .venv/bin/python bench/nurture_bench.py [--events 3000] [--partitions 6] [--repeat 1]
                                            [--json bench/results/nurture.json]

One broker (Apache Kafka, one node) and one redis-server on free ports. N ``lead.scored`` grade-A events (one
new lead each, US, so each one is routed to a rep of a bench sales team with always-open hours
and no capacity limit) are loaded once into a private topic. Each repeat measures:
- raw hop: one aiokafka consumer -> decode (pydantic validate) -> encode -> aiokafka producer
  (``bench/scoring_bench.py``'s baseline, one output per input);
- nurture: ``python -m services.nurture`` on private topics (its own group, Redis prefix and
  topic prefix), counted on ``lead.assigned`` (one per lead). Per lead it also publishes the
  rep alert, the lead reply and the stage change, and appends the state topic.

Then, into the same worker (every lead assigned), ``--outcomes`` outcomes per lead (default 2: a
grade-A lead's rep alert and reply, both sent: what most outcomes are). Their rate is read from the
worker's own count (``leadpipe_events_consumed_total``), from the first consumed to the last,
with the worker's CPU ms per outcome over that window (``--outcomes 0``: no such phase).

A rate is outputs / time read by a consumer of the output topic, from the first output read
once the worker has consumed (its /metrics say so) to the last one. Over the same window: the
worker's CPU ms per lead (its process tree, /proc) and Redis's ``INFO stats``
``total_reads_processed`` (socket reads: about one per round trip) and ``total_commands_processed``
per lead. ``REDIS_AUTOPIPELINE=false`` in the environment reaches the worker (A/B of issue #13). The ratio nurture / raw
hop is the number to compare across runs (the machine's other load is not controlled).
``NURTURE_BENCH_PROFILE=/tmp/nurture{r}.prof`` runs the worker under cProfile (written when it stops);
``NURTURE_BENCH_WRAP`` runs it under a wrapper command, e.g. ``py-spy record -o /tmp/n.txt -f raw --``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.proc_cpu import tree_cpu_s  # noqa: E402
from bench.prom_text import samples  # noqa: E402
from bench.scoring_bench import Stalled, all_consuming, at_once, create, preload, watch  # noqa: E402
from leadpipe.devstack.kafka import start_broker  # noqa: E402
from leadpipe.devstack.processes import ManagedProcess, free_port, start_redis, wait_for_port  # noqa: E402
from schemas.codec import Record, encode  # noqa: E402
from schemas.envelope import new_event  # noqa: E402
from schemas.notification_outcome.v1 import NotificationOutcome  # noqa: E402
from tests.integration.nurture.harness import INPUTS, OUTPUTS, scored, write_config  # noqa: E402

INPUT = "lead.scored.v1"
OUTCOME = "notification.outcome.v1"


def make_events(n: int) -> list[Record]:
    return [encode(scored(f"ld_bench_{i:07d}", grade="A", event_id=f"bench-scored-{i}")) for i in range(n)]


def make_outcomes(n: int, per_lead: int) -> list[Record]:
    """``per_lead`` "sent" outcomes for each of the ``n`` leads: the rep's alert first, then the
    lead's own messages (an outcome that changes no lead)."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        lead = f"ld_bench_{i:07d}"
        for k in range(per_lead):
            rep = k == 0
            data = NotificationOutcome(
                notification_id=f"{'alert' if rep else 'touch'}:{lead}:{k}", lead_id=lead, status="sent",
                channel="email", audience="rep" if rep else "lead", attempts=1, completed_at=now,
            )  # fmt: skip
            out.append(encode(new_event(data, source="/bench", subject=lead, id=f"bench-outcome-{i}-{k}")))
    return out


async def consumed(client: httpx.AsyncClient, port: int, topic_part: str) -> float:
    """The worker's own count of records read from topics whose name holds ``topic_part``."""
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        v for labels, v in samples(text, "leadpipe_events_consumed_total") if topic_part in labels.get("topic", "")
    )


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="nurture-bench-"))
        self.procs: list[ManagedProcess] = []
        self.bootstrap = ""

    def stop_all(self) -> None:
        while self.procs:
            self.procs.pop().stop()

    async def measure(
        self, out: str, proc: ManagedProcess, port: int | None, keep: bool = False, redis_url: str | None = None
    ) -> dict:
        self.procs.append(proc)
        stable = asyncio.ensure_future(all_consuming([port], time.monotonic() + 180) if port else at_once())
        marks: dict[str, tuple[float, dict]] = {}

        def mark(when: str) -> None:
            pid = proc.proc.pid if proc.proc is not None else None
            cpu = tree_cpu_s(pid) if pid else 0.0
            info: dict = {}
            if redis_url:
                with redis.Redis.from_url(redis_url) as client:
                    info = dict(client.info("stats"))
            marks[when] = (cpu, info)

        try:
            res = await watch(self.bootstrap, out, self.args.events, 900, stable, on_window=mark if keep else None)
            if "start" in marks and "end" in marks:
                leads = res["rate"] * res["seconds"]
                (cpu0, info0), (cpu1, info1) = marks["start"], marks["end"]
                res["cpu_ms_per_lead"] = 1000 * (cpu1 - cpu0) / leads
                for k in ("total_reads_processed", "total_commands_processed"):
                    if k in info0:
                        res[k.replace("total_", "redis_").replace("_processed", "") + "_per_lead"] = (
                            info1[k] - info0[k]
                        ) / leads
            return res
        finally:
            stable.cancel()
            if not keep:
                proc.stop()
                self.procs.remove(proc)

    async def raw(self, r: int, src: str) -> dict:
        out = f"out.raw.{r}"
        await create(self.bootstrap, [out], self.args.partitions)
        code = "import sys, asyncio; from bench.scoring_bench import raw_hop; asyncio.run(raw_hop(*sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, self.bootstrap, src, out, f"bench-raw-{r}"]
        proc = ManagedProcess(f"raw-{r}", cmd, self.work / f"raw-{r}.log", cwd=REPO).start()
        return await self.measure(out, proc, None)

    async def nurture(self, redis_url: str, r: int, prefix: str, books: Path, directory: Path) -> dict:
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": redis_url,
            "LEADPIPE_STATE_DIR": str(self.work / f"nurture-{r}"), "OPS_PORT": str(port),
            "NURTURE_GROUP_ID": f"bench-nurture-{r}", "NURTURE_REDIS_PREFIX": f"bench:{r}:",
            "NURTURE_TOPIC_PREFIX": prefix, "NURTURE_STATE_TOPIC": f"nurture.state.{r}",
            "NURTURE_PLAYBOOKS_PATH": str(books), "NURTURE_DIRECTORY_PATH": str(directory),
            "KAFKA_PARTITIONS": str(self.args.partitions), "LOG_LEVEL": os.environ.get("NURTURE_BENCH_LOG_LEVEL", "WARNING"),
        }  # fmt: skip
        wrap = os.environ.get("NURTURE_BENCH_WRAP", "").format(r=r).split()
        profile = os.environ.get("NURTURE_BENCH_PROFILE", "").format(r=r)
        cprofile = ["-m", "cProfile", "-o", profile] if profile else []
        cmd = [*wrap, sys.executable, *cprofile, "-m", "services.nurture"]
        proc = ManagedProcess(f"nurture-{r}", cmd, self.work / f"nurture-{r}.log", env=env, cwd=REPO).start()
        try:
            res = await self.measure(f"{prefix}lead.assigned.v1", proc, port, keep=True, redis_url=redis_url)
            if self.args.outcomes:
                assert proc.proc is not None
                res["outcomes"] = await self.outcomes(port, proc.proc.pid, prefix)
            return res
        except Stalled:
            # What the worker says about itself when it stopped producing (consumed, retries, ...).
            metrics = self.work / f"nurture-{r}.metrics.txt"
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=5) as client:
                    metrics.write_text((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
            print(f"stalled worker's metrics: {metrics}", flush=True)
            raise
        finally:
            stopping = time.monotonic()
            proc.stop()
            code = proc.proc.returncode if proc.proc is not None else None
            print(f"nurture worker stopped in {time.monotonic() - stopping:.1f}s (exit {code})", flush=True)
            if proc in self.procs:
                self.procs.remove(proc)

    async def outcomes(self, port: int, pid: int, prefix: str) -> dict:
        """The outcome phase: preloaded into the running worker, counted from its /metrics."""
        want = self.args.events * self.args.outcomes
        records = make_outcomes(self.args.events, self.args.outcomes)
        async with httpx.AsyncClient(timeout=5) as client:
            before = await consumed(client, port, OUTCOME)
            cpu0 = tree_cpu_s(pid)
            load = asyncio.ensure_future(preload(self.bootstrap, prefix + OUTCOME, records))
            first = last = None
            n = 0.0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                n = await consumed(client, port, OUTCOME) - before
                now = time.monotonic()
                if n > 0 and first is None:
                    first = now
                if n >= want:
                    last = now
                    break
                await asyncio.sleep(0.05)
            cpu1 = tree_cpu_s(pid)
            await load
        if first is None or last is None:
            raise Stalled(f"the worker consumed {n:.0f} of {want} outcomes in 300 s")
        seconds = max(last - first, 0.05)
        return {"outcomes": want, "seconds": seconds, "rate": want / seconds,
                "cpu_ms_per_outcome": 1000 * (cpu1 - cpu0) / want}  # fmt: skip

    async def run(self) -> dict:
        a = self.args
        bport, rport = free_port(), free_port()
        self.procs.append(start_broker(bport, self.work / "broker.log"))
        self.procs.append(start_redis(rport, self.work / "redis", self.work / "redis.log", appendonly=False))
        wait_for_port(bport, timeout_s=30)
        self.bootstrap, redis_url = f"127.0.0.1:{bport}", f"redis://127.0.0.1:{rport}/0"
        books, directory = write_config(self.work, capacity=10**9, reps=4)
        records = make_events(a.events)
        runs: list[dict] = []
        for r in range(a.repeat):
            # Fresh topics per repeat: every worker starts from an empty state (new leads only).
            prefix = f"b{r}."
            names = [prefix + n for n in (*INPUTS, *OUTPUTS)] + [prefix + n + ".dlq" for n in INPUTS]
            await create(self.bootstrap, names, a.partitions)
            load_rate = await preload(self.bootstrap, prefix + INPUT, records)
            print(f"[{r + 1}/{a.repeat}] preloaded {a.events} lead.scored on {a.partitions} partitions "
                  f"({load_rate:,.0f}/s)", flush=True)  # fmt: skip
            raw = await self.raw(r, prefix + INPUT)
            print(f"[{r + 1}/{a.repeat}] raw hop: {raw['rate']:,.0f}/s", flush=True)
            try:
                res = await self.nurture(redis_url, r, prefix, books, directory)
            except Stalled as exc:
                print(f"[{r + 1}/{a.repeat}] nurture: STALLED ({exc})", flush=True)
                runs.append({"repeat": r, "raw": raw, "stalled": str(exc)})
                continue
            ratio = res["rate"] / raw["rate"] if raw["rate"] else float("nan")
            runs.append({"repeat": r, "raw": raw, "nurture": res, "ratio": ratio})
            if "outcomes" in res:
                o = res["outcomes"]
                print(f"[{r + 1}/{a.repeat}] outcomes: {o['rate']:,.0f}/s, {o['cpu_ms_per_outcome']:.3f} CPU ms "
                      f"per outcome ({o['outcomes']} outcomes)", flush=True)  # fmt: skip
            print(f"[{r + 1}/{a.repeat}] nurture: {res['rate']:,.0f} leads/s, ratio {ratio:.3f} "
                  f"(window {res['window']:.0%} of outputs), {res.get('cpu_ms_per_lead', float('nan')):.2f} CPU ms/lead, "
                  f"Redis {res.get('redis_reads_per_lead', float('nan')):.2f} reads/lead "
                  f"{res.get('redis_commands_per_lead', float('nan')):.2f} commands/lead", flush=True)  # fmt: skip
        return {"runs": runs}


def summarise(args: argparse.Namespace, result: dict, load: str) -> dict:
    runs = result["runs"]
    ok = [r for r in runs if "stalled" not in r]
    summary: dict = {
        "command": "bench/nurture_bench.py " + " ".join(sys.argv[1:]),
        "events": args.events,
        "partitions": args.partitions,
        "repeat": args.repeat,
        "raw_median": statistics.median(r["raw"]["rate"] for r in runs) if runs else None,
        "stalled": len(runs) - len(ok),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load},
        "runs": runs,
    }
    if ok:
        summary |= {
            "nurture_median": statistics.median(r["nurture"]["rate"] for r in ok),
            "ratio_median": statistics.median(r["ratio"] for r in ok),
            "redis_autopipeline": os.environ.get("REDIS_AUTOPIPELINE", "default (true)"),
        }
        for k in ("cpu_ms_per_lead", "redis_reads_per_lead", "redis_commands_per_lead"):
            if all(k in r["nurture"] for r in ok):
                summary[k + "_median"] = statistics.median(r["nurture"][k] for r in ok)
        if all("outcomes" in r["nurture"] for r in ok):
            summary["outcomes_per_lead"] = args.outcomes
            for k in ("rate", "cpu_ms_per_outcome"):
                summary[f"outcomes_{k}_median"] = statistics.median(r["nurture"]["outcomes"][k] for r in ok)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--outcomes", type=int, default=2, help="outcomes per lead after the leads (0: none)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "nurture.json")
    args = parser.parse_args()
    if args.events < 1 or args.repeat < 1 or args.partitions < 1:
        parser.error("--events, --repeat and --partitions must be at least 1")
    if args.outcomes < 0:
        parser.error("--outcomes must be 0 or more")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        result = asyncio.run(bench.run())
    finally:
        bench.stop_all()
    s = summarise(args, result, load)
    print()
    print(f"raw aiokafka hop (median of {len(result['runs'])}): {s['raw_median']:,.0f} events/s")
    if "nurture_median" in s:
        print(f"nurture, 1 worker, {args.partitions} part.: {s['nurture_median']:,.1f} leads/s, "
              f"ratio to raw {s['ratio_median']:.3f}")  # fmt: skip
        if "cpu_ms_per_lead_median" in s:
            print(f"nurture worker CPU {s['cpu_ms_per_lead_median']:.2f} ms/lead, Redis "
                  f"{s.get('redis_reads_per_lead_median', float('nan')):.2f} reads/lead, "
                  f"{s.get('redis_commands_per_lead_median', float('nan')):.2f} commands/lead "
                  f"(REDIS_AUTOPIPELINE={s['redis_autopipeline']})")  # fmt: skip
        if "outcomes_rate_median" in s:
            print(f"nurture outcomes ({s['outcomes_per_lead']} per lead, sent): {s['outcomes_rate_median']:,.0f}/s, "
                  f"{s['outcomes_cpu_ms_per_outcome_median']:.3f} CPU ms per outcome")  # fmt: skip
    if s["stalled"]:
        print(f"{s['stalled']} nurture run(s) stalled (left out)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(s, indent=2) + "\n")
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
