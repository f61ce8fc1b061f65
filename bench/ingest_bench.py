"""Ingest throughput beside its limits, measured in the same run (not a timed test).

- form posts/s and p50/p99 against a bare endpoint on the same server that answers 202 doing nothing;
- scans/s uploaded in batches of 500 against a raw aiokafka producer sending the same records.

Usage: .venv/bin/python bench/ingest_bench.py [--seconds 10] [--concurrency 16] [--servers fast,plain]
Starts its own broker (Apache Kafka, one node) and redis-server on free ports, then one ingest
process per ``--servers`` variant in turn, served exactly as ``python -m services.ingest`` serves
it (``services.ingest.__main__``): ``fast`` is uvloop + httptools (the default), ``plain`` is
asyncio's own loop + h11 (how ingest ran before), so both are measured in the same run.
CPU ms per form post: the ingest process's CPU seconds (/proc) over the form phase / posts.
``--profile DIR``: py-spy (speedscope) on each ingest variant during its form phase.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import proc_cpu  # noqa: E402

SERVERS = {
    "fast": "uvloop + httptools, no access log (python -m services.ingest)",
    "plain": "asyncio loop + h11, no access log (ingest before issue #13)",
}

FORM = """
id: bench
title: Bench
fields: {email: identity.email, first_name: person.first_name, company: person.company}
required: [email]
consent: {field: consent, text: "ok"}
rate_limits: {per_ip_per_minute: 100000000, per_form_per_minute: 100000000}
"""


def serve(server: str) -> None:
    """The ingest app plus a bare 202 route, on INGEST_PORT (run in a child process)."""
    import uvicorn
    from fastapi.responses import Response

    from services.ingest.__main__ import run, server_config
    from services.ingest.app import build_deps, create_app
    from services.ingest.config import IngestSettings

    async def main() -> None:
        settings = IngestSettings()
        app = create_app(settings, build_deps(settings))

        @app.post("/bench/bare")
        async def bare() -> Response:
            return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")

        await uvicorn.Server(server_config(settings, app, server)).serve()  # type: ignore[arg-type]

    run(main(), server)  # type: ignore[arg-type]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 2 else float("nan")


async def drive(url: str, make_body, seconds: float, concurrency: int, headers=None) -> tuple[int, float, list[float]]:
    import httpx

    lat: list[float] = []
    count = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:

        async def worker(n: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < stop:
                i += 1
                t = time.perf_counter()
                resp = await client.post(url, json=make_body(n, i))
                lat.append(time.perf_counter() - t)
                if resp.status_code != 202:
                    raise SystemExit(f"{url}: {resp.status_code} {resp.text[:300]}")
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*[worker(n) for n in range(concurrency)])
        elapsed = time.perf_counter() - started
    return count, elapsed, lat


def scan_batch(show: str, n: int, i: int, size: int = 500) -> dict:
    return {
        "device_id": f"d{n}", "show_id": show, "booth": "B1",
        "scans": [
            {"badge_id": f"{n}-{i}-{k}", "scanned_at": "2026-05-01T09:00:00Z", "email": f"b{n}-{i}-{k}@example.com",
             "company": "Acme", "rating": "warm", "notes": "talked about pricing"}
            for k in range(size)
        ],
    }  # fmt: skip


async def raw_producer(bootstrap: str, seconds: float) -> tuple[int, float]:
    """The same scan events, built and sent by a bare aiokafka producer in batches of 500."""
    from leadpipe.runtime.kafka import make_producer
    from leadpipe.runtime.settings import ServiceSettings
    from schemas.codec import encode
    from schemas.envelope import new_event
    from services.ingest.domain.scans import build_captures, parse_batch

    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused")
    producer = make_producer(settings)
    await producer.start()
    count, i = 0, 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            i += 1
            good, _ = build_captures(parse_batch(scan_batch("raw", 0, i)), batch_id=str(i))
            futs = []
            for g in good:
                rec = encode(new_event(g.capture, source="/bench", subject=g.key))
                futs.append(await producer.send("lead.captured.v1", rec.value, key=rec.key, headers=rec.headers))
            await asyncio.gather(*futs)
            count += len(good)
    finally:
        await producer.stop()
    return count, time.perf_counter() - started


async def bench(args: argparse.Namespace) -> None:
    from leadpipe.devstack.kafka import start_broker
    from leadpipe.devstack.processes import ManagedProcess, free_port, start_redis, wait_for_port
    from leadpipe.runtime.kafka import ensure_topics

    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    bport, rport, iport = free_port(), free_port(), free_port()
    broker = start_broker(bport, tmp / "broker.log")
    redis = start_redis(rport, tmp / "redis", tmp / "redis.log")
    procs = [broker, redis]
    try:
        bootstrap = f"127.0.0.1:{bport}"
        await ensure_topics(bootstrap)
        (tmp / "forms").mkdir()
        (tmp / "forms" / "bench.yaml").write_text(FORM)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": f"redis://127.0.0.1:{rport}/0",
            "LEADPIPE_STATE_DIR": str(tmp / "state"), "INGEST_PORT": str(iport), "INGEST_FORMS_DIR": str(tmp / "forms"),
            "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
        }  # fmt: skip

        def form(n: int, i: int) -> dict:
            return {
                "email": f"f{n}-{i}-{uuid.uuid4().hex[:6]}@example.com",
                "first_name": "F",
                "company": "C",
                "consent": "yes",
            }

        s, c = args.seconds, args.concurrency
        raw_n, raw_t = await raw_producer(bootstrap, s)
        raw_rate = raw_n / raw_t
        print(
            f"concurrency {c}, {s:.0f} s per measurement, machine cores: {os.cpu_count()}, load avg {os.getloadavg()}"
        )
        print(f"raw aiokafka producer: {raw_rate:8.0f} scans/s (the scans' baseline, same broker, same run)")
        for server in args.servers:
            ingest = ManagedProcess(
                f"ingest-{server}", [sys.executable, __file__, "--serve", server], tmp / f"ingest-{server}.log", env=env
            ).start()
            try:
                wait_for_port(iport, timeout_s=30, proc=ingest.proc)
                base = f"http://127.0.0.1:{iport}"
                await drive(base + "/bench/bare", form, 1.0, c)  # warm-up
                await drive(base + "/v1/forms/bench", form, 1.0, c)
                bare_n, bare_t, bare_lat = await drive(base + "/bench/bare", form, s, c)
                spy = None
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    spy = subprocess.Popen(
                        [str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking", "-r", "100",
                         "-d", str(int(s)), "-p", str(ingest.pid), "-f", "speedscope",
                         "-o", str(args.profile / f"ingest-{server}.speedscope.json")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                cpu0 = proc_cpu.tree_cpu_s(ingest.pid)
                form_n, form_t, form_lat = await drive(base + "/v1/forms/bench", form, s, c)
                form_cpu = proc_cpu.tree_cpu_s(ingest.pid) - cpu0
                if spy is not None:
                    spy.wait(timeout=60)
                show = f"bench-{uuid.uuid4().hex[:6]}"
                cpu0 = proc_cpu.tree_cpu_s(ingest.pid)
                scan_n, scan_t, scan_lat = await drive(
                    base + "/v1/scans", lambda n, i, show=show: scan_batch(show, n, i), s, 2,
                    headers={"authorization": "Bearer dev-scanner-key"},
                )  # fmt: skip
                scan_cpu = proc_cpu.tree_cpu_s(ingest.pid) - cpu0
            finally:
                ingest.stop()
            bare_rate, form_rate = bare_n / bare_t, form_n / form_t
            scan_rate = scan_n * 500 / scan_t
            print(f"\n[{server}] {SERVERS[server]}")
            print(
                f"  bare 202 endpoint : {bare_rate:8.0f} req/s   p50 {pct(bare_lat, 50):6.1f} ms"
                f"  p99 {pct(bare_lat, 99):6.1f} ms"
            )
            print(
                f"  form posts        : {form_rate:8.0f} req/s   p50 {pct(form_lat, 50):6.1f} ms"
                f"  p99 {pct(form_lat, 99):6.1f} ms   ingest CPU {1000 * form_cpu / form_n:5.2f} ms per post"
            )
            print(f"    ratio form/bare : {form_rate / bare_rate:6.2f}  (aim >= 0.50, p99 < 50 ms)")
            print(
                f"  scan batches (500): {scan_rate:8.0f} scans/s p50 {pct(scan_lat, 50):6.1f} ms"
                f"  p99 {pct(scan_lat, 99):6.1f} ms per batch   ingest CPU {1000 * scan_cpu / (scan_n * 500):5.3f} ms per scan"
            )
            print(f"    ratio scans/raw : {scan_rate / raw_rate:6.2f}  (aim >= 0.60)")
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--servers",
        type=lambda v: [x.strip() for x in v.split(",") if x.strip()],
        default=["fast", "plain"],
        help="ingest server variants to measure in turn: fast (uvloop + httptools), plain (asyncio + h11)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy speedscope files of each variant's form phase here")
    a = parser.parse_args()
    unknown = [x for x in a.servers if x not in SERVERS]
    if unknown or not a.servers:
        parser.error(f"--servers: unknown {unknown}; choose from {', '.join(SERVERS)}")
    if a.serve:
        serve(a.serve)
    else:
        asyncio.run(bench(a))
