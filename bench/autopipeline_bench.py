"""CPU per Redis command of the services' asyncio client, automatic pipelining off vs on, at a
few concurrencies (issue #13): C tasks each awaiting GETs one after another, against a private
redis-server. Each row is measured twice, off and on alternating (the machine is shared).

    .venv/bin/python bench/autopipeline_bench.py [-n 20000] [--concurrency 1 4 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leadpipe.devstack.processes import free_port, start_redis  # noqa: E402
from leadpipe.runtime.redis_client import redis_client  # noqa: E402


async def run(url: str, autopipeline: bool, concurrency: int, n: int) -> tuple[float, float]:
    client = redis_client(url, autopipeline=autopipeline)
    await client.set("k", "v")

    async def worker(m: int) -> None:
        for _ in range(m):
            await client.get("k")

    await asyncio.gather(*(worker(200) for _ in range(concurrency)))  # the pool's connections open
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.aclose()  # type: ignore[attr-defined]
    return n / wall, 1e6 * cpu / n


async def main(n: int, concurrencies: list[int]) -> None:
    work = Path(tempfile.mkdtemp(prefix="autopipeline-bench-"))
    port = free_port()
    proc = start_redis(port, work / "redis", work / "redis.log", appendonly=False)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for c in concurrencies:
            for on in (False, True, False, True):
                rate, us = await run(url, on, c, n)
                print(
                    f"concurrency {c:3d}  autopipeline {'on ' if on else 'off'}  {rate:8.0f} GET/s  {us:6.1f} us CPU/GET"
                )
    finally:
        proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20000, help="GETs per row (default 20000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    if args.n < 1 or any(c < 1 for c in args.concurrency):
        parser.error("-n and every --concurrency must be at least 1")
    asyncio.run(main(args.n, args.concurrency))
