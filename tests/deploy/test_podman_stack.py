"""podman_stack reads deploy/compose.yml as compose does: interpolation, order, replicas, profiles."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from leadpipe.devstack import podman_stack
from leadpipe.devstack.podman_stack import COMPOSE, Service, StackError, interpolate, interpolated, run_args


def _services(env: dict[str, str]) -> dict[str, Service]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return {
        name: Service(name, interpolated(spec, env))
        for name, spec in doc["services"].items()
        if not spec.get("profiles")
    }


def test_interpolation_takes_the_value_the_default_or_refuses_a_missing_required_one():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${SET:-d}-${EMPTY:-d}-${UNSET:-d}", env) == "x-x-d-d"
    with pytest.raises(StackError, match="UNSET: say so"):
        interpolate("${UNSET:?say so}", env)


def test_the_compose_file_starts_brokers_and_redis_before_the_topic_job_and_the_topic_job_before_the_services():
    order = [s.name for s in podman_stack._order(_services({"LEADPIPE_LINK_SECRET": "s"}))]
    assert "grafana" not in order
    for service in ("ingest", "scoring", "nurture", "notifier", "exporter", "canary"):
        assert order.index("topics") < order.index(service)
    for dependency in ("kafka-1", "kafka-2", "kafka-3", "redis"):
        assert order.index(dependency) < order.index("topics")


def test_each_replica_runs_on_the_project_network_under_the_service_alias_with_its_healthcheck_run_by_the_script():
    services = _services({"LEADPIPE_LINK_SECRET": "s", "LEADPIPE_IMAGE": "localhost/leadpipe:test"})
    scoring = services["scoring"]
    assert scoring.containers("p") == ["p-scoring-1", "p-scoring-2"]
    args = run_args(scoring, "p-scoring-2", "p", COMPOSE.parent)
    assert args[args.index("--network") + 1] == "p-net" and args[args.index("--network-alias") + 1] == "scoring"
    assert "localhost/leadpipe:test" in args and args[-3:] == ["python", "-m", "services.scoring"]
    kafka = run_args(services["kafka-1"], "p-kafka-1", "p", COMPOSE.parent)
    assert kafka[kafka.index("--health-interval") + 1] == "disable"
    assert "p_kafka-1:/var/lib/kafka/data" in kafka


class _FakePodman:
    """podman's answers for ``down``: ``rm`` fails ``rm_failures`` times, as for a container its
    restart policy is just restarting."""

    def __init__(self, rm_failures: int):
        self.rm_failures = rm_failures
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> Any:
        import subprocess

        self.calls.append(args)
        if args[0] == "ps":
            out = "" if self.rm_failures < 0 else "c1\nc2\n"
            return subprocess.CompletedProcess(args, 0, out, "")
        if args[0] == "rm":
            if self.rm_failures > 0:
                self.rm_failures -= 1
                return subprocess.CompletedProcess(args, 125, "", "container state improper: stopped")
            self.rm_failures = -1
        return subprocess.CompletedProcess(args, 0, "", "")


def test_down_tries_again_when_a_restarting_container_refuses_removal(monkeypatch: pytest.MonkeyPatch):
    fake = _FakePodman(rm_failures=2)
    monkeypatch.setattr(podman_stack, "podman", fake)
    monkeypatch.setattr(podman_stack.time, "sleep", lambda s: None)
    podman_stack.down("lpx", volumes=False)
    assert [c[0] for c in fake.calls].count("rm") == 3


def test_down_says_what_podman_answered_when_removal_keeps_failing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(podman_stack, "podman", _FakePodman(rm_failures=5))
    monkeypatch.setattr(podman_stack.time, "sleep", lambda s: None)
    with pytest.raises(StackError, match="container state improper"):
        podman_stack.down("lpx", volumes=False)
