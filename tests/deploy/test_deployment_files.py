"""Structural checks of the Dockerfile, compose file and Kubernetes manifests.

Nothing here starts a container or talks to a cluster (neither exists on the build machine);
`docker compose config` runs only if the docker client has the compose plugin.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.known_metrics import ROOT

DEPLOY = ROOT / "deploy"
SERVICES = ("ingest", "scoring", "nurture", "notifier")
PORTS = {
    "ingest": 8080, "scoring": 9101, "nurture": 9102, "notifier": 9103, "exporter": 9104, "canary": 9105, "console": 8090,
}  # fmt: skip


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yml").read_text()))


def _k8s() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").rglob("*.yml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _k8s() if d["kind"] == kind}


def test_compose_runs_three_kraft_brokers_with_replication_three_and_min_insync_two() -> None:
    services = _compose()["services"]
    brokers = {name: s for name, s in services.items() if name.startswith("kafka-")}
    assert len(brokers) == 3
    ids = set()
    for broker in brokers.values():
        env = broker["environment"]
        assert "apache/kafka" in broker["image"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert "ZOOKEEPER" not in " ".join(env)
        ids.add(env["KAFKA_NODE_ID"])
    assert ids == {1, 2, 3}


def test_compose_has_redis_with_aof_prometheus_grafana_and_replicated_services() -> None:
    services = _compose()["services"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert {"prometheus", "grafana", "exporter", "canary", "topics"} <= set(services)
    for name in SERVICES:
        service = services[name]
        assert service["deploy"]["replicas"] >= 2, name
        env = service["environment"]
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true", name
        assert env["KAFKA_REPLICATION_FACTOR"] == "3", name
        assert len(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == 3, name
        assert f"services.{name}" in service["command"]
    assert "--replication-factor" in services["topics"]["command"]


def test_compose_mounts_the_prometheus_and_grafana_files_that_exist() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_the_file_when_the_plugin_exists() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker client has no compose plugin")
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env={"LEADPIPE_LINK_SECRET": "x", "GRAFANA_ADMIN_PASSWORD": "x", "PATH": "/usr/bin:/usr/local/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_every_deployment_has_probes_resources_a_pdb_and_config() -> None:
    deployments = _kind("Deployment")
    pdbs = _kind("PodDisruptionBudget")
    assert set(deployments) == set(PORTS)
    for name, dep in deployments.items():
        [container] = dep["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"], name
        assert container["ports"][0]["containerPort"] == PORTS[name]
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"leadpipe-config", "leadpipe-secrets"}, name
        assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(PORTS[name])
        labels = dep["spec"]["selector"]["matchLabels"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == labels, name


def test_consumers_autoscale_on_their_consumer_lag() -> None:
    hpas = _kind("HorizontalPodAutoscaler")
    for name in ("scoring", "nurture", "notifier"):
        metrics = hpas[name]["spec"]["metrics"]
        lag = [m for m in metrics if m["type"] == "External"]
        assert lag and lag[0]["external"]["metric"]["name"] == "leadpipe_consumer_lag", name
        assert hpas[name]["spec"]["maxReplicas"] <= 6, "more replicas than partitions sit idle"
    assert "ingest" in hpas


def test_production_config_turns_idempotence_on_and_keeps_secrets_in_the_secret() -> None:
    config = _kind("ConfigMap")["leadpipe-config"]["data"]
    secret = _kind("Secret")["leadpipe-secrets"]["stringData"]
    assert config["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert "LEADPIPE_LINK_SECRET" in secret and "LEADPIPE_LINK_SECRET" not in config
    assert "KAFKA_SASL_PASSWORD" in secret and "KAFKA_SASL_PASSWORD" not in config


def test_kustomization_lists_every_manifest_but_the_optional_ones() -> None:
    listed = set(yaml.safe_load((DEPLOY / "k8s" / "kustomization.yml").read_text())["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yml")} - {"kustomization.yml", "adapter.yml"}
    assert listed == present


def test_the_dockerfile_is_one_image_with_a_command_per_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 1
    assert "uv sync --frozen --no-dev" in text
    assert "USER leadpipe" in text
    commands = {tuple(d["spec"]["template"]["spec"]["containers"][0]["command"]) for d in _kind("Deployment").values()}
    assert ("python", "-m", "services.scoring") in commands
    for name in SERVICES:
        assert f"python -m services.{name}" in text


def test_compose_runs_the_console_with_its_own_postgresql_under_the_console_profile() -> None:
    from services.console.config import ConsoleSettings

    port = ConsoleSettings.model_fields["console_port"].default
    services = _compose()["services"]
    console, db = services["console"], services["console-db"]
    assert console["profiles"] == db["profiles"] == ["console"]
    assert console["command"] == ["python", "-m", "services.console"]
    assert console["depends_on"]["console-db"] == {"condition": "service_healthy"}
    assert console["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
    env = console["environment"]
    assert env["CONSOLE_PORT"] == str(port) and f":{port}/healthz" in " ".join(console["healthcheck"]["test"])
    assert "@console-db:5432/console" in env["DATABASE_URL"] and env["CONSOLE_SESSION_SECRET"].startswith("${")
    assert "pg_isready" in db["healthcheck"]["test"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.compose.yml").read_text())["scrape_configs"]
    [job] = [j for j in scrape if j["job_name"] == "leadpipe-console"]
    assert job["dns_sd_configs"][0] == {"names": ["console"], "type": "A", "port": port}


def test_the_console_runs_one_replica_in_kubernetes_with_its_secrets_in_the_secret() -> None:
    console = _kind("Deployment")["console"]
    assert console["spec"]["replicas"] == 1 and console["spec"]["strategy"]["type"] == "Recreate"
    config = _kind("ConfigMap")["leadpipe-config"]["data"]
    secret = _kind("Secret")["leadpipe-secrets"]["stringData"]
    for name in ("DATABASE_URL", "CONSOLE_SESSION_SECRET", "CONSOLE_PASSWORD_HASHES"):
        assert name in secret and name not in config, name
    assert _kind("Service")["console"]["spec"]["ports"][0]["port"] == PORTS["console"]


def test_the_retention_sweep_runs_daily_one_at_a_time_with_a_command_the_cli_accepts() -> None:
    from leadpipe.cli import build_parser

    cron = _kind("CronJob")["leadpipe-retention-sweep"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    minute, hour, day, month, weekday = cron["spec"]["schedule"].split()
    assert (day, month, weekday) == ("*", "*", "*") and minute.isdigit() and hour.isdigit()
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert [ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]] == [
        "leadpipe-config", "leadpipe-secrets"
    ]  # fmt: skip
    program, *argv = container["command"]
    args = build_parser().parse_args(argv)  # the very arguments the CronJob passes
    assert program == "leadpipe" and args.command == "scoring" and not args.dry_run
