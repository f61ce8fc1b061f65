"""The fetch routine's plan (aiokafka's ``Fetcher._get_actions_per_node``), unprofiled: its CPU
per call, timed by the thread's CPU clock, for a consumer of 36 partitions (fetch sessions on)
reading 1,000 records at 50 a second, as ``bench/fetch_session_bench.py`` runs it, but in this
process. A throwaway measurement (round 15's README), not a benchmark of the product.

    .venv/bin/python bench/results/issue13-round15/plan_cost.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import aiokafka.consumer.fetcher as aiokafka_fetcher

import bench.fetch_session_bench as fsb
from leadpipe.devstack.kafka import start_broker
from leadpipe.devstack.processes import free_port, wait_for_port

spent = {"calls": 0, "cpu_s": 0.0}
plan = aiokafka_fetcher.Fetcher._get_actions_per_node


def timed(self: Any, assignment: Any) -> Any:
    started = time.thread_time()
    try:
        return plan(self, assignment)
    finally:
        spent["cpu_s"] += time.thread_time() - started
        spent["calls"] += 1


def main() -> None:
    aiokafka_fetcher.Fetcher._get_actions_per_node = timed
    work = Path(tempfile.mkdtemp())
    port = free_port()
    broker = start_broker(port, work / "broker.log")
    try:
        wait_for_port(port, timeout_s=60)
        bootstrap = f"127.0.0.1:{port}"
        topics = [f"p.t{n}" for n in range(6)]
        asyncio.run(fsb.create_topics(bootstrap, topics, 6))

        def produce() -> None:
            time.sleep(4)
            asyncio.run(fsb.produce(bootstrap, topics, 6, 1000, 50))

        producer = threading.Thread(target=produce)
        producer.start()
        started = time.thread_time()
        result = asyncio.run(fsb.consume(bootstrap, topics, 6, 1000, True))
        thread_cpu = time.thread_time() - started
        producer.join()
        print(result, f"consumer thread CPU {thread_cpu:.3f} s;", f"plan: {spent['calls']} calls,",
              f"{spent['cpu_s']:.3f} s, {spent['cpu_s'] / spent['calls'] * 1e6:.1f} us a call")  # fmt: skip
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
