"""How long an erasure takes while the pipeline is busy (a script, not a test).

    .venv/bin/python bench/erasure_bench.py [--rate 20] [--seconds 40] [--erasures 3]

One embedded stack (Apache Kafka, redis-server, the four services; the throttles of
``bench/pipeline_bench.py`` lifted). Grade-A web forms are posted over HTTP at ``--rate`` per
second for ``--seconds``; after a warm-up, ``--erasures`` people captured earlier are erased one
after another through ``POST /v1/privacy/erasure``. For each: seconds from the POST until the
receipts of ingest, scoring, nurture and the notifier are all on ``person.erased.v1``, and whether
the person's lead is then gone from Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from redis.asyncio import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pipeline_bench import bench_config  # noqa: E402
from leadpipe.devstack.stack import PIPELINE, Stack  # noqa: E402
from leadpipe.ops.privacy import read_all  # noqa: E402
from leadpipe.ops.settings import OpsSettings  # noqa: E402
from schemas.person_erased.v1 import PersonErased  # noqa: E402

SERVICES = {"ingest", "scoring", "nurture", "notifier"}


def form(email: str) -> dict[str, str]:
    return {"email": email, "first_name": "Bench", "last_name": "Lead", "company": "Maple Analytics",
            "job_title": "Director of Operations", "country": "US", "seats": "40", "need": "yes",
            "timeline": "this quarter", "marketing_consent": "on"}  # fmt: skip


async def post(client: httpx.AsyncClient, base: str, email: str) -> None:
    headers = {"Origin": base, "Referer": base + "/"}
    await client.post(base + "/v1/forms/demo", data=form(email), headers=headers)


async def load(client: httpx.AsyncClient, base: str, rate: float, seconds: float, run: str) -> int:
    sent, start = 0, time.monotonic()
    tasks = set()
    while time.monotonic() - start < seconds:
        t = asyncio.create_task(post(client, base, f"load.{run}.{sent}@mapleanalytics.com"))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
    await asyncio.gather(*tasks, return_exceptions=True)
    return sent


async def run(args: argparse.Namespace, stack: Stack) -> None:
    base = stack.url("ingest")
    settings = OpsSettings(kafka_bootstrap_servers=stack.bootstrap)
    redis: Redis[bytes] = Redis.from_url(stack.redis_url)
    run_id = uuid.uuid4().hex[:6]
    people = [f"erase.{run_id}.{i}@mapleanalytics.com" for i in range(args.erasures)]
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(120):
            try:
                if (await client.get(base + "/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        for email in people:
            await post(client, base, email)
        for email in people:
            while not await redis.exists(f"scoring:link:email:{email}"):
                await asyncio.sleep(0.2)
        loader = asyncio.create_task(load(client, base, args.rate, args.seconds, run_id))
        await asyncio.sleep(args.seconds / 4)
        for email in people:
            started = time.monotonic()
            resp = await client.post(base + "/v1/privacy/erasure", json={"email": email},
                                     headers={"Authorization": "Bearer dev-privacy-key"})  # fmt: skip
            request_id = resp.json()["request_id"]
            seen: set[str] = set()
            while seen < SERVICES and time.monotonic() - started < 120:
                events, _ = await read_all(settings, ["person.erased.v1"])
                seen = {e.data.service for e in events
                        if isinstance(e.data, PersonErased) and e.data.request_id == request_id}  # fmt: skip
                await asyncio.sleep(0.2)
            took = time.monotonic() - started
            gone = not await redis.exists(f"scoring:link:email:{email}")
            print(f"erasure of person {people.index(email) + 1}: receipts {sorted(seen)} after {took:.2f}s"
                  f" (under load); scoring link gone: {gone}", flush=True)  # fmt: skip
        posted = await loader
        print(f"load: {posted} forms posted at {args.rate}/s over {args.seconds:.0f}s", flush=True)
    await redis.aclose()  # type: ignore[attr-defined]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--erasures", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="erasure-bench-"))
    env, _ = bench_config(work)
    # The stack starts outside the event loop (it runs its own loops while starting).
    with Stack(work / "stack", services=list(PIPELINE), ports="free", env=env) as stack:
        asyncio.run(run(args, stack))
    return 0


if __name__ == "__main__":
    sys.exit(main())
