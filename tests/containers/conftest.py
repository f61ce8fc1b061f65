"""The container suite: deploy/compose.yml running in podman (``leadpipe.devstack.podman_stack``).

Runs only under ``make test-containers`` (it sets ``LEADPIPE_TEST_CONTAINERS=1`` after building the
images and checking that podman runs containers); a bare ``pytest`` skips it. One stack per
session, project ``lpct`` (its own network, containers and volumes, removed afterwards), with:
the notifiers' outbox on a host directory (the audit reads it), the chaos and demo forms mounted
into ingest, and the chaos suite's notifier recipient limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from leadpipe.devstack import podman_stack
from services.ingest.config import FORMS_DIR as DEMO_FORMS
from tests.chaos.driver import FORMS_DIR as CHAOS_FORMS

PROJECT = "lpct"
KAFKA_VERSION = "4.1.1"
WORKER_PORTS = {"scoring": 9101, "nurture": 9102, "notifier": 9103}


#: The order the container tests share one stack in: the plain journey, the load without faults
#: (the control), the faults, and the broker partition last (consumers have stayed on stale
#: leadership for minutes after it: docs/operations.md#containers).
ORDER = (
    "test_compose_stack",
    "test_replicas_under_load",
    "test_restart_policy",
    "test_redis_partition",
    "test_broker_partition",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LEADPIPE_TEST_CONTAINERS") == "1":

        def rank(item: pytest.Item) -> int:
            module = item.module.__name__.rsplit(".", 1)[-1] if isinstance(item, pytest.Function) else ""
            return ORDER.index(module) if module in ORDER else -1

        items.sort(key=rank)
        return
    skip = pytest.mark.skip(reason="container suite: `make test-containers` runs it (needs podman)")
    for item in items:
        if item.get_closest_marker("containers"):
            item.add_marker(skip)


@dataclass
class ContainerStack:
    project: str
    outbox: Path
    timings: dict[str, float] = field(default_factory=dict)

    def name(self, service: str, replica: int | None = None) -> str:
        return f"{self.project}-{service}" + (f"-{replica}" if replica else "")

    def ip(self, container: str) -> str:
        return podman_stack.container_ip(container, self.project)

    def url(self, service: str, replica: int, port: int) -> str:
        return f"http://{self.ip(self.name(service, replica))}:{port}"

    @property
    def bootstrap(self) -> str:
        return "localhost:29091,localhost:29092,localhost:29093"

    def podman(self, *args: str) -> str:
        return podman_stack.podman(*args).stdout


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


# 240 s was too short at 19:35 UTC on 2026-11-26 (load average 50 to 67 on the 2 shared cores: the
# containers took 269 s to start and the replicas were not all ready 240 s later).
def wait_ready(stack: ContainerStack, timeout_s: float = 600.0) -> None:
    urls = [stack.url("ingest", r, 8080) for r in (1, 2)]
    urls += [stack.url(s, r, port) for s, port in WORKER_PORTS.items() for r in (1, 2)]
    deadline = time.monotonic() + timeout_s
    for url in urls:
        while not _ready(url):
            assert time.monotonic() < deadline, f"{url}/readyz never answered 200"
            time.sleep(1.0)


def wait_container_ready(
    stack: ContainerStack, service: str, replica: int, port: int, timeout_s: float = 120.0
) -> None:
    """One replica answers ``/readyz`` (its address read again: a restarted container may get a new one)."""
    deadline = time.monotonic() + timeout_s
    while not _ready(stack.url(service, replica, port)):
        assert time.monotonic() < deadline, f"{stack.name(service, replica)} /readyz never answered 200"
        time.sleep(1.0)


@pytest.fixture(scope="session")
def container_stack() -> Iterator[ContainerStack]:
    # Kept after the run (pytest's own temp dirs rotate away under parallel sessions): the
    # containers' logs, the outbox and, when the audit fails, what it saw.
    root = Path(__file__).resolve().parents[2] / ".leadpipe" / "containers-test"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    outbox, forms = root / "outbox", root / "forms"
    outbox.mkdir()
    forms.mkdir()
    for source in (DEMO_FORMS, CHAOS_FORMS):
        for form in source.glob("*.yaml"):
            shutil.copy(form, forms / form.name)
    # The services run as uid 10001; the host directories are the test's, world-writable.
    for path in (root, outbox, forms):
        path.chmod(0o777)
    env = {
        **os.environ,
        "LEADPIPE_LINK_SECRET": "container-tests-only",
        "LEADPIPE_KAFKA_IMAGE": os.environ.get("LEADPIPE_KAFKA_IMAGE", f"leadpipe-kafka:{KAFKA_VERSION}"),
        "LEADPIPE_REDIS_IMAGE": os.environ.get("LEADPIPE_REDIS_IMAGE", "leadpipe-redis:7"),
        "LEADPIPE_PROMETHEUS_IMAGE": os.environ.get("LEADPIPE_PROMETHEUS_IMAGE", "leadpipe-prometheus:2"),
    }
    extra = {
        "ingest": {"environment": {"INGEST_FORMS_DIR": "/forms"}, "volumes": [f"{forms}:/forms:ro"]},
        "notifier": {
            "environment": {"NOTIFIER_OUTBOX_DIR": "/outbox", "NOTIFIER_RECIPIENT_LIMIT": "1000000"},
            "volumes": [f"{outbox}:/outbox"],
        },
    }
    stack = ContainerStack(PROJECT, outbox)
    podman_stack.down(PROJECT)
    t0 = time.monotonic()
    try:
        podman_stack.up(project=PROJECT, env=env, extra=extra)
        stack.timings["containers_started_s"] = time.monotonic() - t0
        wait_ready(stack)
        stack.timings["stack_ready_s"] = time.monotonic() - t0
        print(f"\ncontainer stack ready in {stack.timings['stack_ready_s']:.1f}s", flush=True)
        yield stack
    finally:
        if os.environ.get("LEADPIPE_KEEP_CONTAINERS") != "1":
            logs = root / "logs"
            logs.mkdir(exist_ok=True)
            ids = podman_stack.podman("ps", "-a", "--format", "{{.Names}}", "--filter",
                                      f"label={podman_stack.LABEL}={PROJECT}", check=False).stdout.split()  # fmt: skip
            for name in ids:
                with open(logs / f"{name}.log", "w") as out:
                    subprocess.run(["podman", "logs", name], stdout=out, stderr=subprocess.STDOUT, check=False)
            podman_stack.down(PROJECT)
