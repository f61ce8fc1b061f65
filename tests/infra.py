"""Test infrastructure: a broker and a Redis for the suite.

Selection, in order:
- ``LEADPIPE_TEST_KAFKA=host:port`` / ``LEADPIPE_TEST_REDIS=redis://...``: use those (e.g. a
  real Kafka cluster); tests then create uniquely named topics and groups.
- ``LEADPIPE_TEST_INFRA=containers``: Kafka and Redis containers via testcontainers (Docker).
- default: an embedded Apache Kafka (KRaft, ``leadpipe.devstack.kafka``) and a redis-server
  on free ports, per session. ``LEADPIPE_TEST_BROKERS=3`` makes it a three-node cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from leadpipe.devstack.kafka import KafkaCluster
from leadpipe.devstack.processes import ManagedProcess, free_port, start_redis


@dataclass
class Broker:
    bootstrap: str
    cluster: KafkaCluster | None  # None when external (env or container)
    embedded: bool

    @property
    def nodes(self) -> int:
        return self.cluster.nodes if self.cluster is not None else 1


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
    nodes = int(os.environ.get("LEADPIPE_TEST_BROKERS", "1"))
    cluster = KafkaCluster(log_dir / "kafka", log_dir, nodes=nodes).start()
    try:
        import asyncio

        from leadpipe.runtime.kafka import wait_for_broker

        asyncio.run(wait_for_broker(cluster.bootstrap, 90.0, brokers=nodes))
        yield Broker(cluster.bootstrap, cluster, embedded=True)
    finally:
        cluster.stop()


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


@contextmanager
def postgres(log_dir: Path) -> Iterator[str]:
    """A PostgreSQL server URL: ``LEADPIPE_TEST_DATABASE_URL``, else a private server (fsync off).

    Its data dir is a fresh directory under /tmp, not under pytest's tmp dir: as root the server
    runs as the ``postgres`` user, who cannot enter pytest's private (0700) directories."""
    external = os.environ.get("LEADPIPE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    import shutil
    import tempfile

    from leadpipe.devstack.processes import start_postgres

    root = Path(tempfile.mkdtemp(prefix="leadpipe-pg-"))
    os.chmod(root, 0o755)
    port = free_port()
    proc = start_postgres(port, root / "data", log_dir / "postgres.log", durable=False)
    try:
        yield f"postgresql://leadpipe@127.0.0.1:{port}/postgres"
    finally:
        proc.stop()
        shutil.rmtree(root, ignore_errors=True)
