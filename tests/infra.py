"""Test infrastructure: a broker and a Redis for the suite.

Selection, in order:
- ``LEADPIPE_TEST_KAFKA=host:port`` / ``LEADPIPE_TEST_REDIS=redis://...``: use those (e.g. a
  real Kafka cluster); tests then create uniquely named topics and groups.
- ``LEADPIPE_TEST_INFRA=containers``: Kafka and Redis containers via testcontainers, on the
  locally built images (``scripts/images.sh infra``: ``leadpipe-kafka:<version>``,
  ``leadpipe-redis:7``; nothing is pulled, Ryuk is off). ``DOCKER_HOST`` if set, else a
  ``podman system service`` on a private socket started for the session (podman's
  Docker-compatible API, with deploy/podman/containers.conf).
- default: an embedded Apache Kafka (KRaft, ``leadpipe.devstack.kafka``) and a redis-server
  on free ports, per session. ``LEADPIPE_TEST_BROKERS=3`` makes it a three-node cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from leadpipe.devstack.kafka import KafkaCluster, kafka_version
from leadpipe.devstack.processes import ManagedProcess, free_port, start_redis

ROOT = Path(__file__).resolve().parents[1]
_podman_service: list[subprocess.Popen[bytes]] = []


def _container_engine() -> None:
    """Point testcontainers at a Docker-compatible API: ``DOCKER_HOST``, else our own podman service."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    # Published ports are on this host: without this, testcontainers believes it runs inside a
    # container here and asks for a gateway address that podman's API does not return
    # (KeyError: 'HostConfig'). Read when testcontainers is imported, so set before that.
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    if os.environ.get("DOCKER_HOST"):
        return
    run_dir = Path(tempfile.mkdtemp(prefix="leadpipe-podman-"))
    sock = run_dir / "podman.sock"
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "podman" / "containers.conf")}
    with open(run_dir / "service.log", "wb") as log:
        proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    _podman_service.append(proc)
    atexit.register(_stop_podman_service)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"podman system service did not start: {(run_dir / 'service.log').read_text()}")
        time.sleep(0.1)
    os.environ["DOCKER_HOST"] = f"unix://{sock}"


def _stop_podman_service() -> None:
    for proc in _podman_service:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
    _podman_service.clear()


def _wait_for_redis(url: str, timeout_s: float = 30.0) -> None:
    import redis as redis_client

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            redis_client.Redis.from_url(url, socket_timeout=2).ping()
            return
        except redis_client.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def _kafka_container() -> Iterator[str]:
    """One KRaft node of the locally built Kafka image, its listener on the same port inside and
    out (a broker advertises one address; the host's port must be that address's port)."""
    _container_engine()
    from testcontainers.core.container import DockerContainer

    port = free_port()
    container = (
        DockerContainer(os.environ.get("LEADPIPE_TEST_KAFKA_IMAGE", f"localhost/leadpipe-kafka:{kafka_version()}"))
        .with_bind_ports(port, port)
        .with_env("CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qk")
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_LISTENERS", f"PLAINTEXT://:{port},CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://localhost:{port}")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
        .with_env("KAFKA_LOG_DIRS", "/var/lib/kafka/data")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "12")
        .with_env("KAFKA_NUM_PARTITIONS", "6")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true")
    )
    with container:
        yield f"localhost:{port}"


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
        import asyncio

        from leadpipe.runtime.kafka import wait_for_broker

        with _kafka_container() as bootstrap:
            asyncio.run(wait_for_broker(bootstrap, 90.0))
            yield Broker(bootstrap, None, embedded=False)
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
        _container_engine()
        from testcontainers.core.container import DockerContainer

        image = os.environ.get("LEADPIPE_TEST_REDIS_IMAGE", "localhost/leadpipe-redis:7")
        with DockerContainer(image).with_exposed_ports(6379) as container:
            url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            _wait_for_redis(url)
            yield RedisServer(url, None)
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
