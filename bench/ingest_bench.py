"""Ingest throughput beside its limits, measured in the same run (not a timed test).

- form posts/s and p50/p99 against a bare endpoint on the same server that answers 202 doing nothing;
- scans/s uploaded in batches of 500 against a raw aiokafka producer sending the same records.

Usage: .venv/bin/python bench/ingest_bench.py [--seconds 10] [--concurrency 16]
Starts its own broker (Apache Kafka, one node), redis-server and ingest process (uvicorn) on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORM = """
id: bench
title: Bench
fields: {email: identity.email, first_name: person.first_name, company: person.company}
required: [email]
consent: {field: consent, text: "ok"}
rate_limits: {per_ip_per_minute: 100000000, per_form_per_minute: 100000000}
"""


def serve() -> None:
    """The ingest app plus a bare 202 route, on INGEST_PORT (run in a child process)."""
    import uvicorn
    from fastapi.responses import Response

    from services.ingest.app import build_deps, create_app
    from services.ingest.config import IngestSettings

    async def main() -> None:
        settings = IngestSettings()
        app = create_app(settings, build_deps(settings))

        @app.post("/bench/bare")
        async def bare() -> Response:
            return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")

        config = uvicorn.Config(app, host="127.0.0.1", port=settings.ingest_port, log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()

    asyncio.run(main())


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
        ingest = ManagedProcess("ingest", [sys.executable, __file__, "--serve"], tmp / "ingest.log", env=env).start()
        procs.append(ingest)
        wait_for_port(iport, timeout_s=30, proc=ingest.proc)
        base = f"http://127.0.0.1:{iport}"

        def form(n: int, i: int) -> dict:
            return {
                "email": f"f{n}-{i}-{uuid.uuid4().hex[:6]}@example.com",
                "first_name": "F",
                "company": "C",
                "consent": "yes",
            }

        s, c = args.seconds, args.concurrency
        await drive(base + "/bench/bare", form, 1.0, c)  # warm-up
        await drive(base + "/v1/forms/bench", form, 1.0, c)
        bare_n, bare_t, bare_lat = await drive(base + "/bench/bare", form, s, c)
        form_n, form_t, form_lat = await drive(base + "/v1/forms/bench", form, s, c)
        show = f"bench-{uuid.uuid4().hex[:6]}"
        scan_n, scan_t, scan_lat = await drive(
            base + "/v1/scans", lambda n, i: scan_batch(show, n, i), s, 2,
            headers={"authorization": "Bearer dev-scanner-key"},
        )  # fmt: skip
        raw_n, raw_t = await raw_producer(bootstrap, s)
        bare_rate, form_rate = bare_n / bare_t, form_n / form_t
        scan_rate, raw_rate = scan_n * 500 / scan_t, raw_n / raw_t
        print(f"concurrency {c}, {s:.0f} s per measurement, machine cores: {os.cpu_count()}")
        print(
            f"bare 202 endpoint : {bare_rate:8.0f} req/s   p50 {pct(bare_lat, 50):6.1f} ms  p99 {pct(bare_lat, 99):6.1f} ms"
        )
        print(
            f"form posts        : {form_rate:8.0f} req/s   p50 {pct(form_lat, 50):6.1f} ms  p99 {pct(form_lat, 99):6.1f} ms"
        )
        print(f"  ratio form/bare : {form_rate / bare_rate:6.2f}  (aim >= 0.50, p99 < 50 ms)")
        print(
            f"scan batches (500): {scan_rate:8.0f} scans/s p50 {pct(scan_lat, 50):6.1f} ms  p99 {pct(scan_lat, 99):6.1f} ms per batch"
        )
        print(f"raw aiokafka      : {raw_rate:8.0f} scans/s")
        print(f"  ratio scans/raw : {scan_rate / raw_rate:6.2f}  (aim >= 0.60)")
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    a = parser.parse_args()
    if a.serve:
        serve()
    else:
        asyncio.run(bench(a))
