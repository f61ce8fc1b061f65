"""``make run``: the whole pipeline on the embedded broker and a private Redis.

Starts (unless ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` point elsewhere) a Tansu broker and
a redis-server with state under ``.leadpipe/``, creates every topic of the registry, starts
each service that exists, prints where things are, and on Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from leadpipe.devstack.processes import (
    ManagedProcess,
    free_port,
    port_is_free,
    start_broker,
    start_redis,
    wait_for_port,
)
from leadpipe.runtime.kafka import ensure_topics, wait_for_broker


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
)


def available_services() -> list[ServiceSpec]:
    found = []
    for spec in SERVICES:
        main = spec.main_module if spec.module else f"{spec.main_module}.__main__"
        if importlib.util.find_spec(main) is not None:
            found.append(spec)
    return found


def run(state_dir: Path, *, ready_file: Path | None = None) -> int:
    state_dir = state_dir.resolve()
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    outbox = state_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    started: list[ManagedProcess] = []
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nleadpipe: stopping ...", flush=True)
        for proc in reversed(started):
            proc.stop()
        print("leadpipe: stopped, no process left behind.", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0 = time.monotonic()
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            wanted = int(os.environ.get("LEADPIPE_BROKER_PORT", "9092"))
            port = wanted if port_is_free(wanted) else free_port()
            started.append(start_broker(port, logs / "broker.log"))
            bootstrap = f"127.0.0.1:{port}"
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            port = free_port()
            started.append(start_redis(port, state_dir / "redis", logs / "redis.log"))
            redis_url = f"redis://127.0.0.1:{port}/0"
        asyncio.run(wait_for_broker(bootstrap))
        created = asyncio.run(ensure_topics(bootstrap, partitions=int(os.environ.get("KAFKA_PARTITIONS", "6"))))
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis_url,
            "LEADPIPE_STATE_DIR": str(state_dir),
            "NOTIFIER_OUTBOX_DIR": str(outbox),
        }
        services = available_services()
        for spec in services:
            port = spec.chosen_port()
            proc = ManagedProcess(
                spec.name,
                [sys.executable, "-m", spec.main_module],
                logs / f"{spec.name}.log",
                env=env | {spec.port_env: str(port)},
            ).start()
            started.append(proc)
        (state_dir / "pids").write_text("".join(f"{p.name} {p.pid}\n" for p in started))
        for spec, proc in zip(services, started[-len(services) :] if services else [], strict=True):
            wait_for_port(spec.chosen_port(), timeout_s=60.0, proc=proc.proc)
        elapsed = time.monotonic() - t0
        lines = [
            f"leadpipe is up in {elapsed:.1f}s",
            f"  broker       {bootstrap}  ({len(created)} topics created)",
            f"  redis        {redis_url}",
        ]
        for spec in services:
            port = spec.chosen_port()
            lines.append(f"  {spec.name:<12} http://127.0.0.1:{port}/  ({spec.what})")
        missing = [s.name for s in SERVICES if s not in services]
        if missing:
            lines.append(f"  not built yet: {', '.join(missing)}")
        lines += [
            f"  outbox       {outbox}",
            f"  logs         {logs}",
            "Press Ctrl-C to stop.",
        ]
        print("\n".join(lines), flush=True)
        if ready_file is not None:
            ready_file.write_text("\n".join(lines))
        while True:
            for proc in started:
                if not proc.alive():
                    print(
                        f"leadpipe: {proc.name} exited ({proc.proc.returncode if proc.proc else '?'}); see {proc.log_path}",
                        flush=True,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except SystemExit:
        return 0
    finally:
        stop_all()
