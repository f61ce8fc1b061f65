"""The embedded broker: Apache Kafka 4 in KRaft mode, one node or a local cluster, on loopback.

The jars come from Maven Central through the committed ``kafka/pom.xml`` (fetched once into
``.leadpipe/tools/kafka-<hash>/``), and run on the machine's Java 17+. Each node keeps its log
under its own data directory, formatted once: stopping and starting a cluster keeps every topic,
offset and consumer group.

    cluster = KafkaCluster(state / "kafka", log_dir, nodes=3).start()
    cluster.bootstrap            # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
    cluster.kill9(1); cluster.restart(1)
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadpipe.devstack.processes import ManagedProcess, free_port, port_is_free, stop_all, wait_for_port

HERE = Path(__file__).resolve().parent / "kafka"
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j2.properties"


class KafkaSetupError(RuntimeError):
    """Java or Maven is missing, or fetching the broker failed; the message says what to do."""


def kafka_version() -> str:
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not found:
        raise KafkaSetupError(f"{POM} names no <kafka.version>")
    return found.group(1)


def tools_dir() -> Path:
    """Where fetched tools live: ``LEADPIPE_TOOLS_DIR``, else the checkout's ``.leadpipe/tools``."""
    env = os.environ.get("LEADPIPE_TOOLS_DIR")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2] / ".leadpipe" / "tools"


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaSetupError(
            "no Java runtime found: Apache Kafka 4 needs Java 17+ "
            "(Debian: apt-get install openjdk-17-jre-headless; or set JAVA_HOME)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    found = re.search(r'version "(\d+)', out)
    if found and int(found.group(1)) < 17:
        raise KafkaSetupError(f"{java} is Java {found.group(1)}; Apache Kafka 4 needs Java 17+ (set JAVA_HOME)")
    return java


def ensure_jars(*, quiet: bool = False) -> Path:
    """The broker's jar directory, fetched with Maven on first use (under a lock: parallel test
    sessions and ``make run`` share one fetch)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    home = tools_dir() / f"kafka-{kafka_version()}-{digest}"
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / ".complete").exists():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaSetupError("Maven (mvn) not found: it fetches the broker (Debian: apt-get install maven)")
        if not quiet:
            print(
                f"leadpipe: fetching Apache Kafka {kafka_version()} with Maven into {home} ...",
                file=sys.stderr,
                flush=True,
            )
        t0 = time.monotonic()
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise KafkaSetupError(
                f"fetching Apache Kafka with Maven failed ({mvn} exited {result.returncode}):\n{tail}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        (home / ".complete").write_text(kafka_version())
        if not quiet:
            print(
                f"leadpipe: fetched Apache Kafka {kafka_version()} in {time.monotonic() - t0:.1f}s",
                file=sys.stderr,
                flush=True,
            )
    return libs


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class KafkaCluster:
    """``nodes`` KRaft nodes, each broker and controller at once (combined mode), on loopback.

    ``ports``: the first node's client port (``make run``: 9092 when free); others are free ports,
    remembered in ``<state>/ports.json`` so a restart keeps the addresses clients already know."""

    state_dir: Path
    log_dir: Path
    nodes: int = 1
    first_port: int = 0
    heap: str = "384m"
    #: node id -> the port it tells clients to use instead of its own (a TCP proxy in front of it).
    advertise: dict[int, int] = field(default_factory=dict)
    node_list: list[KafkaNode] = field(default_factory=list)

    # -- set-up --------------------------------------------------------------------------------
    def _plan(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        saved_path = self.state_dir / "ports.json"
        saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
        if saved and int(saved.get("nodes", 0)) != self.nodes:
            raise KafkaSetupError(
                f"{self.state_dir} holds a {saved['nodes']}-node cluster, not {self.nodes}: "
                "use another state dir or remove this one"
            )
        taken: set[int] = set()

        def pick(key: str, wanted: int = 0) -> int:
            for candidate in (int(saved.get(key, 0)), wanted):
                if candidate and candidate not in taken and port_is_free(candidate):
                    taken.add(candidate)
                    return candidate
            while True:
                port = free_port()
                if port not in taken:
                    taken.add(port)
                    return port

        self.node_list = []
        for i in range(1, self.nodes + 1):
            port = pick(f"port-{i}", self.first_port if i == 1 else 0)
            cport = pick(f"controller-{i}")
            self.node_list.append(KafkaNode(i, port, cport, self.state_dir / f"node-{i}"))
        ports = {"nodes": self.nodes}
        for n in self.node_list:
            ports |= {f"port-{n.node_id}": n.port, f"controller-{n.node_id}": n.controller_port}
        saved_path.write_text(json.dumps(ports))

    def _properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.node_list)
        replicas = min(3, self.nodes)
        min_isr = 2 if self.nodes >= 3 else 1
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.advertise.get(node.node_id, node.port)}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir / "log",
            # Durability as in production: every topic replicated to all (up to 3) nodes, and a
            # write is acknowledged only when min.insync.replicas of them have it.
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "unclean.leader.election.enable": "false",
            # Development speed: a group's first join is not held back 3 s for late members, and the
            # internal topics are small (50 partitions each cost start-up time and idle CPU).
            "group.initial.rebalance.delay.ms": 0,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.num.partitions": 6,
            # One group coordinator thread (Kafka's default is 4) for a dev stack's handful of groups:
            # with the one offsets partition above, the coordinator's idle threads 0.25-0.27 ->
            # 0.13-0.18 % of a core (bench/results/issue13-idle4, with the round's other changes).
            "group.coordinator.threads": 1,
            "num.partitions": 6,
            "auto.create.topics.enable": "true",
            "log.retention.hours": 168,
            "log.segment.bytes": 64 * 1024 * 1024,
            # Idle CPU (bench/idle_bench.py): every request handler and network thread wakes
            # every 300 ms to poll its queue even with nothing to do; 8 + 3 of them idle cost more
            # than a dev broker on a laptop needs. 2 + 1 carry the pipeline bench on 2 cores.
            "num.io.threads": 2,
            "num.network.threads": 1,
            # The controller appends a no-op record to the metadata log every 500 ms by default
            # (a liveness beat brokers only use to detect a stale metadata log): 5 s is plenty.
            "metadata.max.idle.interval.ms": 5000,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, libs: Path, main: str, *args: str, heap: str | None = None) -> list[str]:
        argv = [java_binary()]
        if heap:
            # Serial GC: no background GC threads on a 2-core dev machine; a dev broker's heap is small.
            # No perf data: the JVM would sample its counters into a shared file every 50 ms, idle
            # or not, for tools (jstat) a dev broker is not watched with.
            # The monitor deflation thread looks for idle locks to reclaim four times a second; every
            # 5 s is plenty for a dev broker (and it still deflates at once when monitors run short).
            argv += [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
                     "-XX:+UnlockDiagnosticVMOptions", "-XX:AsyncDeflationInterval=5000"]  # fmt: skip
        argv += [
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip
        return argv

    def _format(self, libs: Path) -> None:
        id_file = self.state_dir / "cluster.id"
        if not id_file.exists():
            # A KRaft cluster id: 16 random bytes, base64url without padding (22 characters); not
            # one starting with "-", which the format tool's argument parser takes for an option.
            cluster_id = "-"
            while cluster_id.startswith("-"):
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            id_file.write_text(cluster_id)
        cluster_id = id_file.read_text().strip()
        todo = [n for n in self.node_list if not (n.data_dir / "log" / "meta.properties").exists()]
        procs = []
        for node in todo:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            config = node.data_dir / "server.properties"
            config.write_text(self._properties(node))
            procs.append(
                (
                    node,
                    subprocess.Popen(
                        self._java(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    ),
                )
            )  # fmt: skip
        for node, proc in procs:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise KafkaSetupError(f"formatting Kafka node {node.node_id} failed: {out.strip()[-2000:]}")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, timeout_s: float = 90.0) -> KafkaCluster:
        libs = ensure_jars()
        self._plan()
        self._format(libs)
        try:
            for node in self.node_list:
                self._spawn(libs, node)
            for node in self.node_list:
                assert node.process is not None
                wait_for_port(node.port, timeout_s=timeout_s, proc=node.process.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, libs: Path, node: KafkaNode) -> None:
        config = node.data_dir / "server.properties"
        config.write_text(self._properties(node))
        node.process = ManagedProcess(
            f"kafka-{node.node_id}" if self.nodes > 1 else "broker",
            self._java(libs, "kafka.Kafka", str(config), heap=self.heap),
            self.log_dir / (f"kafka-{node.node_id}.log" if self.nodes > 1 else "broker.log"),
        ).start()

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.node_list)

    @property
    def processes(self) -> list[ManagedProcess]:
        return [n.process for n in self.node_list if n.process is not None]

    def node(self, node_id: int) -> KafkaNode:
        for n in self.node_list:
            if n.node_id == node_id:
                return n
        raise ValueError(f"no Kafka node {node_id}; nodes: {[n.node_id for n in self.node_list]}")

    def busiest_leader(self, topics: Sequence[str]) -> int:
        """The node leading the most partitions of ``topics`` (the one whose loss hurts most)."""
        import asyncio
        from collections import Counter

        described = asyncio.run(_describe(self.bootstrap, list(topics)))
        leaders = Counter(p["leader"] for t in described for p in t["partitions"] if p["leader"] >= 0)
        return int(leaders.most_common(1)[0][0])

    def wait_in_sync(self, timeout_s: float = 90.0) -> None:
        """Until every partition of every topic has all its replicas in sync again (after a node
        came back), so the next fault does not take away the only up-to-date copy."""
        import asyncio

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                described = asyncio.run(_describe(self.bootstrap, None))
                behind = [
                    f"{t['topic']}-{p['partition']}"
                    for t in described
                    for p in t["partitions"]
                    if p["leader"] < 0 or len(p["isr"]) < len(p["replicas"])
                ]
            except Exception as exc:  # a node still starting: ask again
                behind = [repr(exc)]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions not back in sync after {timeout_s}s: {behind[:10]}")
            time.sleep(0.5)

    def kill9(self, node_id: int) -> None:
        """SIGKILL one node (a crash: no controlled shutdown, its log recovered at the next start)."""
        proc = self.node(node_id).process
        if proc is not None:
            proc.kill9()

    def stop_node(self, node_id: int, timeout_s: float = 30.0) -> None:
        """SIGTERM one node: a controlled shutdown that moves its leaderships away first."""
        proc = self.node(node_id).process
        if proc is not None:
            proc.stop(timeout_s=timeout_s)

    def restart(self, node_id: int, *, timeout_s: float = 90.0) -> None:
        node = self.node(node_id)
        if node.process is not None:
            node.process.stop()
        self._spawn(ensure_jars(quiet=True), node)
        assert node.process is not None
        wait_for_port(node.port, timeout_s=timeout_s, proc=node.process.proc)

    def stop(self, timeout_s: float = 10.0) -> None:
        procs = [p for p in self.processes if p.alive()]
        stop_all(procs, timeout_s)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


async def _describe(bootstrap: str, topics: list[str] | None) -> list[dict[str, Any]]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        return list(await admin.describe_topics(topics))
    finally:
        await admin.close()


def start_broker(port: int, log_path: Path) -> ManagedProcess:
    """One Kafka node on ``port`` with its data beside ``log_path`` (the benchmarks' broker); stop
    the returned process to stop it."""
    cluster = KafkaCluster(log_path.parent / f"kafka-{port}", log_path.parent, first_port=port).start()
    return cluster.processes[0]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leadpipe.devstack.kafka fetch``: fetch the pinned broker now (CI warm-up)."""
    args = list(argv if argv is not None else sys.argv[1:])
    if args[:1] == ["fetch"]:
        print(ensure_jars())
        return 0
    print("usage: python -m leadpipe.devstack.kafka fetch", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
