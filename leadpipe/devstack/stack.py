"""The whole pipeline as a set of child processes: Kafka, Redis, topics and every service.

``make run`` uses it with the fixed ports, the end-to-end tests, the chaos suite and the load
benchmark with free ports, extra environment and replicas. Each process can be killed
(``kill9``), restarted, or (the broker) paused, so failures can be made on purpose.

    with Stack(tmp / "stack", ports="free", env={"NURTURE_SLA_SECONDS": "3"}) as stack:
        httpx.post(stack.url("ingest") + "/v1/forms/demo", json=...)
        stack.kill9("scoring"); stack.restart("scoring")
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from leadpipe.devstack.kafka import KafkaCluster, tools_dir
from leadpipe.devstack.processes import ManagedProcess, free_port, start_postgres, start_redis, stop_all, wait_for_port
from leadpipe.runtime.kafka import ensure_topics, wait_for_broker
from leadpipe.runtime.keystore import KeyStoreSettings, keyring_from
from schemas.pii import Keyring, use_keyring


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port_env: str
    port: int
    what: str
    module: str = ""

    @property
    def main_module(self) -> str:
        return self.module or f"services.{self.name}"

    def chosen_port(self) -> int:
        """The default port, or ``LEADPIPE_<NAME>_PORT`` when set."""
        return int(os.environ.get(f"LEADPIPE_{self.name.upper()}_PORT", self.port))


#: Stable defaults: later checks rely on ingest at 127.0.0.1:8080.
SERVICES = (
    ServiceSpec("ingest", "INGEST_PORT", 8080, "capture API, demo page and /metrics"),
    ServiceSpec("scoring", "OPS_PORT", 9101, "/metrics /healthz /readyz"),
    ServiceSpec("nurture", "OPS_PORT", 9102, "/metrics /healthz /readyz"),
    ServiceSpec("notifier", "OPS_PORT", 9103, "/metrics /healthz /readyz"),
    ServiceSpec("exporter", "EXPORTER_PORT", 9104, "consumer lag and DLQ depth /metrics", "leadpipe.exporter"),
    ServiceSpec("canary", "CANARY_PORT", 9105, "synthetic lead every 30 s, round-trip /metrics", "leadpipe.canary"),
    ServiceSpec("console", "CONSOLE_PORT", 8090, "sales console: reps' leads, managers' funnel (sign in)"),
)
PIPELINE = ("ingest", "scoring", "nurture", "notifier")
#: The clients' metadata refresh on a one-node cluster this stack runs (see ``Stack.env_for``).
ONE_NODE_METADATA_MAX_AGE_MS = 60_000


def keystore_url(redis_url: str) -> str:
    """The data-key store beside a Redis URL: the same server, database 1 (the services use 0)."""
    base, _, db = redis_url.rpartition("/")
    return f"{base}/1" if db.isdigit() and base.count("/") >= 2 else redis_url.rstrip("/") + "/1"


def available_services() -> list[ServiceSpec]:
    found = []
    for spec in SERVICES:
        main = spec.main_module if spec.module else f"{spec.main_module}.__main__"
        if importlib.util.find_spec(main) is not None:
            found.append(spec)
    return found


def _spec(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown service {name!r}; known: {', '.join(s.name for s in SERVICES)}")


class Stack:
    """Broker + Redis + services. ``ports="fixed"``: the defaults (``make run``); ``"free"``: any free port."""

    def __init__(
        self,
        state_dir: Path,
        *,
        services: Sequence[str] | None = None,
        ports: Literal["fixed", "free"] = "free",
        env: Mapping[str, str] | None = None,
        replicas: Mapping[str, int] | None = None,
        partitions: int | None = None,
        bootstrap: str | None = None,
        redis_url: str | None = None,
        brokers: int = 1,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.logs = self.state_dir / "logs"
        self.outbox = self.state_dir / "outbox"
        available = {s.name for s in available_services()}
        names = services if services is not None else [s.name for s in SERVICES]
        self.specs = [_spec(n) for n in names if n in available]
        self.ports_mode = ports
        self.extra_env = dict(env or {})
        self.replicas = {name: max(1, (replicas or {}).get(name, 1)) for name in names}
        self.partitions = partitions or int(os.environ.get("KAFKA_PARTITIONS", "6"))
        self.bootstrap = bootstrap or ""
        #: Services run against a broker this stack did not start (its node count is unknown).
        self.bootstrap_given = bool(bootstrap)
        self.redis_url = redis_url or ""
        self.brokers = brokers
        self.kafka: KafkaCluster | None = None
        self.redis: ManagedProcess | None = None
        #: The console's PostgreSQL: ``DATABASE_URL`` when set, else a private server (only if the console runs).
        self.database_url = os.environ.get("DATABASE_URL", "")
        self.postgres: ManagedProcess | None = None
        self._postgres_port = 0
        self.created_topics: list[str] = []
        self.procs: dict[str, list[ManagedProcess]] = {}
        self._ports: dict[str, list[int]] = {}
        self._redis_port = 0
        self._keyring_token: tuple[Keyring | None] | None = None
        #: seconds each start-up phase took (kafka, redis, topics, services), for "up in ..." lines
        self.timings: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Stack:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.outbox.mkdir(parents=True, exist_ok=True)
        try:
            self.start_infra()
            t0 = time.monotonic()
            # Every port first: a service's environment may name another's (LEADPIPE_PUBLIC_URL).
            for spec in self.specs:
                self._ports[spec.name] = [self._pick_port(spec, i) for i in range(self.replicas[spec.name])]
            for spec in self.specs:
                self.procs[spec.name] = [self._spawn(spec, i) for i in range(self.replicas[spec.name])]
            for spec in self.specs:
                for i, proc in enumerate(self.procs[spec.name]):
                    wait_for_port(self._ports[spec.name][i], timeout_s=60.0, proc=proc.proc)
            self.timings["services listening"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def start_infra(self) -> None:
        t0 = time.monotonic()
        if not self.bootstrap:
            wanted = int(os.environ.get("LEADPIPE_BROKER_PORT", "9092")) if self.ports_mode == "fixed" else 0
            self.kafka = KafkaCluster(self.state_dir / "kafka", self.logs, nodes=self.brokers, first_port=wanted)
            self.kafka.start()
            self.bootstrap = self.kafka.bootstrap
        if not self.redis_url:
            self._redis_port = free_port()
            self.redis = start_redis(self._redis_port, self.state_dir / "redis", self.logs / "redis.log")
            self.redis_url = f"redis://127.0.0.1:{self._redis_port}/0"
        self._use_keyring()
        if not self.database_url and any(s.name == "console" for s in self.specs):
            self._postgres_port = free_port()
            self._start_postgres()
            self.database_url = f"postgresql://leadpipe@127.0.0.1:{self._postgres_port}/postgres"
        asyncio.run(wait_for_broker(self.bootstrap, brokers=self.brokers, timeout_s=90.0))
        self.timings["kafka+redis"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.created_topics = asyncio.run(
            ensure_topics(self.bootstrap, partitions=self.partitions, replication_factor=self.replication_factor)
        )
        self.timings["topics"] = time.monotonic() - t0

    def _start_postgres(self) -> None:
        self.postgres = start_postgres(self._postgres_port, self.state_dir / "postgres", self.logs / "postgres.log")

    @property
    def replication_factor(self) -> int:
        return min(3, self.brokers)

    @property
    def broker(self) -> ManagedProcess | None:
        """The first Kafka node (the only one of a single-node stack)."""
        return self.kafka.processes[0] if self.kafka is not None and self.kafka.processes else None

    def _use_keyring(self) -> None:
        # privacy hook: this process (a test, a bench) reads and writes the stack's records with
        # the stack's data keys, as its services do; ``stop`` puts the previous keyring back
        if self._keyring_token is None and self.redis_url:
            ring = keyring_from(KeyStoreSettings(leadpipe_keystore_url=keystore_url(self.redis_url)))
            self._keyring_token = (use_keyring(ring),)

    def stop(self, timeout_s: float = 8.0) -> None:
        """Services first (all at once: SIGTERM, then SIGKILL what is left after ``timeout_s``),
        then Redis and the brokers. Bounded: a worker stuck in a group join cannot hold it up."""
        stop_all([p for name in self.procs for p in self.procs[name]], timeout_s)
        infra = [p for p in (self.redis, self.postgres) if p is not None]
        stop_all(infra + (self.kafka.processes if self.kafka is not None else []), timeout_s)
        if self._keyring_token is not None:
            use_keyring(self._keyring_token[0])
            self._keyring_token = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def all_processes(self) -> list[ManagedProcess]:
        infra = (self.kafka.processes if self.kafka is not None else []) + [p for p in (self.redis, self.postgres) if p]
        return infra + [p for name in self.procs for p in self.procs[name]]

    # -- where things are ------------------------------------------------------------------
    def port(self, name: str, replica: int = 0) -> int:
        return self._ports[name][replica]

    def url(self, name: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.port(name, replica)}"

    def env_for(self, name: str, replica: int = 0) -> dict[str, str]:
        """The environment a service replica runs with (also handy for CLIs run against the stack)."""
        # Replicas beyond the first get their own state dir (spool, Faust data) and outbox.
        state = self.state_dir if replica == 0 else self.state_dir / "replicas" / f"{name}-{replica}"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "LEADPIPE_STATE_DIR": str(state),
            "NOTIFIER_OUTBOX_DIR": str(self.outbox),
            "KAFKA_PARTITIONS": str(self.partitions),
            "KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
            # privacy hook: the crypto-shredding key store, a Redis database of its own
            "LEADPIPE_KEYSTORE_URL": keystore_url(self.redis_url),
        }
        if self.brokers == 1 and not self.bootstrap_given and "KAFKA_METADATA_MAX_AGE_MS" not in os.environ:
            # The 5 s metadata refresh finds a partition leader that moved to another broker; a
            # one-node cluster's leaders never move, and each refresh is a request every client
            # makes and parses (the whole cluster's topics) for nothing: idle CPU.
            env["KAFKA_METADATA_MAX_AGE_MS"] = str(ONE_NODE_METADATA_MAX_AGE_MS)
        if os.environ.get("PYTHONDONTWRITEBYTECODE") and "PYTHONPYCACHEPREFIX" not in os.environ:
            # Bytecode: a service's start imports ~700 modules, about 1.4 s of CPU to compile them
            # where no .pyc is kept (PYTHONDONTWRITEBYTECODE set, as some shells do). The image has
            # them compiled (UV_COMPILE_BYTECODE); there the stack's services keep theirs beside the
            # tools instead of in the source tree, so a replica added under load, a restart or a
            # benchmark's stack starts as it would from the image. (``make`` sets the same.)
            env["PYTHONPYCACHEPREFIX"] = str(tools_dir().parent / "pycache")
            env["PYTHONDONTWRITEBYTECODE"] = ""  # empty: not set, for Python
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self._ports.get("ingest"):
            # Links that leave the pipeline (accept, decline, unsubscribe) point at this stack's ingest.
            env["LEADPIPE_PUBLIC_URL"] = self.url("ingest")
        return env | self.extra_env

    def _pick_port(self, spec: ServiceSpec, replica: int) -> int:
        if self.ports_mode == "fixed" and replica == 0:
            return spec.chosen_port()
        return free_port()

    def _spawn(self, spec: ServiceSpec, replica: int) -> ManagedProcess:
        suffix = "" if replica == 0 else f"-{replica}"
        return ManagedProcess(
            f"{spec.name}{suffix}",
            [sys.executable, "-m", spec.main_module],
            self.logs / f"{spec.name}{suffix}.log",
            env=self.env_for(spec.name, replica) | {spec.port_env: str(self._ports[spec.name][replica])},
        ).start()

    def add_replica(self, name: str, *, timeout_s: float = 60.0) -> int:
        """Start one more replica of a running service (scale-out under load; its consumer
        group rebalances); returns the new replica's index."""
        if name not in self.procs:
            raise ValueError(f"service {name!r} is not running in this stack; running: {', '.join(self.procs)}")
        spec = _spec(name)
        index = len(self.procs[name])
        self._ports[name].append(self._pick_port(spec, index))
        proc = self._spawn(spec, index)
        self.procs[name].append(proc)
        self.replicas[name] = index + 1
        wait_for_port(self._ports[name][index], timeout_s=timeout_s, proc=proc.proc)
        return index

    # -- failures on purpose -----------------------------------------------------------------
    def kill9(self, name: str, replica: int = 0) -> None:
        self.procs[name][replica].kill9()

    def restart(self, name: str, replica: int = 0, *, timeout_s: float = 60.0) -> None:
        """Stop (if still running) and start one service replica again on the same port."""
        spec = _spec(name)
        self.procs[name][replica].stop()
        proc = self._spawn(spec, replica)
        self.procs[name][replica] = proc
        wait_for_port(self._ports[name][replica], timeout_s=timeout_s, proc=proc.proc)

    @contextlib.contextmanager
    def broker_paused(self, node_id: int = 1) -> Iterator[None]:
        """Freeze a broker (SIGSTOP) and thaw it after the block: to its clients, a broker that
        hangs (a long GC pause, a stalled disk) and comes back."""
        proc = self._kafka().node(node_id).process
        assert proc is not None
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(proc.pid, signal.SIGCONT)

    def _kafka(self) -> KafkaCluster:
        if self.kafka is None:
            raise RuntimeError("the broker is external to this stack; fail it yourself")
        return self.kafka

    def kill9_broker(self, node_id: int = 1) -> None:
        self._kafka().kill9(node_id)

    def stop_broker(self, node_id: int = 1) -> None:
        self._kafka().stop_node(node_id)

    def restart_broker(self, node_id: int = 1) -> None:
        self._kafka().restart(node_id)

    # -- the whole stack down and up again ---------------------------------------------------------
    def crash(self) -> None:
        """Everything SIGKILLed at once, as when the host loses power: no process gets to flush,
        commit or leave its group."""
        for proc in self.all_processes():
            proc.kill9()

    def start_again(self, *, timeout_s: float = 120.0) -> None:
        """After ``crash`` or ``stop``: brokers, Redis (with its append-only file) and every
        service start again on the same ports and state dirs, as a second ``make run`` would."""
        if self.kafka is not None:
            self.kafka.start()
        if self.redis is not None:
            self.redis = start_redis(self._redis_port, self.state_dir / "redis", self.logs / "redis.log")
        self._use_keyring()  # ``stop`` put the previous one back
        if self.postgres is not None:
            self._start_postgres()
        asyncio.run(wait_for_broker(self.bootstrap, brokers=self.brokers, timeout_s=timeout_s))
        for spec in self.specs:
            self.procs[spec.name] = [self._spawn(spec, i) for i in range(self.replicas[spec.name])]
        self.wait_ready(timeout_s=timeout_s)

    def restart_redis(self, *, wipe: bool = False, timeout_s: float = 15.0) -> None:
        """SIGKILLs the private redis-server and starts it again on the same port, from its
        append-only file. ``wipe=True``: the services' database comes back empty, as when the
        pipeline's Redis is lost (the services rebuild from the topics). The data-key store
        (database 1 here, ``keystore_url``) is kept: in production it is a store of its own, and
        losing it loses the personal fields of every past record (docs/privacy.md), which no
        rebuild brings back."""
        if self.redis is None:
            raise RuntimeError("Redis is external to this stack; restart it yourself")
        self.redis.kill9()
        self.redis = start_redis(self._redis_port, self.state_dir / "redis", self.logs / "redis.log")
        if wipe:
            self._flush_services_db(timeout_s)

    def _flush_services_db(self, timeout_s: float) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.flushdb()
                    return
                except redis.BusyLoadingError:  # still reading its append-only file
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def wait_ready(self, names: Sequence[str] | None = None, timeout_s: float = 90.0) -> None:
        """Until every service answers ``/readyz`` 200: its Redis reachable and, for a worker, its
        partitions assigned. Raises with each laggard's last answer (or a dead process's log)."""
        import httpx

        pending = set(names if names is not None else self.procs)
        deadline = time.monotonic() + timeout_s
        last: dict[str, str] = {}
        with httpx.Client(timeout=2.0) as http:
            while pending and time.monotonic() < deadline:
                dead = self.first_dead()
                if dead is not None:
                    raise RuntimeError(f"{dead.name} exited while the stack was starting; log: {dead.log_path}")
                for name in sorted(pending):
                    try:
                        resp = http.get(self.url(name) + "/readyz")
                    except httpx.HTTPError as exc:
                        last[name] = repr(exc)
                        continue
                    if resp.status_code == 200:
                        pending.discard(name)
                    else:
                        last[name] = resp.text
                if pending:
                    time.sleep(0.2)
        if pending:
            raise TimeoutError(
                f"not ready after {timeout_s}s: {', '.join(f'{n}: {last.get(n)}' for n in sorted(pending))}"
            )

    def first_dead(self) -> ManagedProcess | None:
        for proc in self.all_processes():
            if not proc.alive():
                return proc
        return None

    def wait_until(self, check: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.2) -> None:
        """Poll ``check()`` until truthy; on timeout raise with the first dead process's log tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(interval_s)
        dead = self.first_dead()
        hint = f"; {dead.name} is dead, log: {dead.log_path}" if dead else ""
        raise TimeoutError(f"condition not met within {timeout_s}s{hint}")
