"""Every consumer group and topic the deploy files name (compose, Kubernetes, KEDA, the Prometheus
rule tests) is one the code uses: ``schemas.topics.CONSUMER_GROUPS`` and the topic registry.

A group named differently in a deploy file is not an error anyone sees at deploy time: the
exporter just watches a group that does not exist and the autoscaler scales on a lag that is
always zero. So the names are checked here, not remembered.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.topics import CONSUMER_GROUPS, TOPICS, consumer_group, subscriptions
from tests.deploy.known_metrics import ROOT

DEPLOY = ROOT / "deploy"
GROUPS = set(CONSUMER_GROUPS.values())
#: The deployments that consume, by the service name the registry knows them under.
CONSUMING = ("scoring", "nurture", "notifier")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted((DEPLOY / "k8s").rglob("*.yml")) for doc in _docs(path)]


def _split(text: str) -> set[str]:
    return {part.strip() for part in text.split(",") if part.strip()}


def _exporter_group_lists() -> dict[str, set[str]]:
    """Where: the exporter's ``EXPORTER_GROUPS`` in compose and in its Kubernetes Deployment."""
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    lists = {"compose.yml exporter": _split(compose["services"]["exporter"]["environment"]["EXPORTER_GROUPS"])}
    for path, doc in _k8s():
        if doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", ()):
                if env["name"] == "EXPORTER_GROUPS":
                    lists[f"{path.relative_to(DEPLOY)} {doc['metadata']['name']}"] = _split(env["value"])
    return lists


def _lag_scalers() -> list[tuple[str, str, str, str]]:
    """(where, deployment, group, topic) of every HPA lag metric and every KEDA kafka trigger."""
    found: list[tuple[str, str, str, str]] = []
    for path, doc in _k8s():
        if "kind" not in doc:  # kustomization.yml
            continue
        where = f"{path.relative_to(DEPLOY)} {doc['kind']}/{doc.get('metadata', {}).get('name')}"
        target = doc.get("spec", {}).get("scaleTargetRef", {}).get("name", "")
        if doc.get("kind") == "HorizontalPodAutoscaler":
            for metric in doc["spec"]["metrics"]:
                labels = metric.get("external", {}).get("metric", {}).get("selector", {}).get("matchLabels", {})
                if "group" in labels or "topic" in labels:
                    found.append((where, target, labels.get("group", ""), labels.get("topic", "")))
        elif doc.get("kind") == "ScaledObject":
            for trigger in doc["spec"]["triggers"]:
                if trigger["type"] == "kafka":
                    meta = trigger["metadata"]
                    found.append((where, target, meta.get("consumerGroup", ""), meta.get("topic", "")))
    return found


def _prometheus_test_groups() -> list[tuple[str, str]]:
    """(file, group) for every ``group`` label in the Prometheus rule tests' series and alerts."""
    found = []
    for path in sorted((DEPLOY / "prometheus").rglob("*.yml")):
        for group in re.findall(r"""\bgroup(?:=|: )"?([A-Za-z0-9_.-]+)""", path.read_text()):
            found.append((str(path.relative_to(DEPLOY)), group))
    return found


def test_the_deploy_files_name_lag_scalers_and_exporter_groups_at_all():
    # Guards the parsers below: a test that finds nothing to check passes for the wrong reason.
    assert len(_lag_scalers()) >= 6
    assert len(_exporter_group_lists()) == 2
    assert _prometheus_test_groups()


@pytest.mark.parametrize("where", sorted(_exporter_group_lists()))
def test_the_exporter_watches_exactly_the_groups_the_code_commits_under(where: str):
    groups = _exporter_group_lists()[where]
    assert groups - GROUPS == set(), f"{where}: EXPORTER_GROUPS names groups no service uses"
    assert GROUPS - groups == set(), f"{where}: EXPORTER_GROUPS misses groups the services commit under"


@pytest.mark.parametrize("scaler", _lag_scalers(), ids=lambda s: s[0])
def test_every_lag_scaler_names_its_services_group_and_a_topic_it_consumes(scaler: tuple[str, str, str, str]):
    where, deployment, group, topic = scaler
    assert deployment in CONSUMING, f"{where}: scales {deployment!r}, which consumes no topic"
    assert group == consumer_group(deployment), (
        f"{where}: group {group!r}, the code uses {consumer_group(deployment)!r}"
    )
    assert topic in TOPICS, f"{where}: topic {topic!r} is not in the topic registry"
    assert topic in subscriptions(deployment), f"{where}: {deployment} does not consume {topic}"


def test_the_prometheus_rule_tests_use_real_group_names():
    wrong = [(where, group) for where, group in _prometheus_test_groups() if group not in GROUPS]
    assert wrong == [], f"group labels no service uses: {wrong}"


def test_the_services_settings_default_to_the_registrys_group_names():
    from leadpipe.ops.settings import OpsSettings
    from services.console.config import ConsoleSettings
    from services.notifier.config import NotifierSettings
    from services.nurture.config import NurtureSettings
    from services.scoring.config import ScoringSettings

    defaults = {
        "scoring": ScoringSettings.model_fields["scoring_group_id"].default,
        "nurture": NurtureSettings.model_fields["nurture_group_id"].default,
        "notifier": NotifierSettings.model_fields["notifier_app_id"].default,
        "console": ConsoleSettings.model_fields["console_consumer_group"].default,
        "dlq-replay": OpsSettings.model_fields["dlq_replay_group"].default,
    }
    assert defaults == CONSUMER_GROUPS
