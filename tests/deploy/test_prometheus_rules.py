"""Prometheus rules: valid for promtool, unit-tested, only known metrics, runbooks in the docs."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from leadpipe.devstack.stack import SERVICES
from tests.deploy.known_metrics import ROOT, known_metrics, metrics_in
from tests.support.tools import require_tool

PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted(PROM.glob("*.rules.yml"))


@pytest.fixture
def promtool() -> str:
    return require_tool("promtool", "prometheus")


def _rules() -> list[dict[str, object]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += group["rules"]
    return out


def _alerts() -> list[dict[str, object]]:
    return [r for r in _rules() if "alert" in r]


def test_promtool_accepts_the_rule_files(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml"])
def test_promtool_accepts_the_scrape_config(config: str, promtool: str) -> None:
    result = subprocess.run([promtool, "check", "config", str(PROM / config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    result = subprocess.run(
        [promtool, "test", "rules", *(str(t.relative_to(PROM)) for t in tests)],
        capture_output=True,
        text=True,
        cwd=PROM,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_required_by_the_issue_exists() -> None:
    names = {a["alert"] for a in _alerts()}
    for wanted in (
        "LeadpipePipelineStalled",
        "LeadpipeConsumerLagHigh",
        "LeadpipeDLQGrowing",
        "LeadpipeIngestSpoolNotDraining",
        "LeadpipeNotificationFailures",
        "LeadpipeSLABreaches",
        "LeadpipeTimeToAlertP99High",
    ):
        assert wanted in names


def test_every_alert_is_unit_tested_by_promtool() -> None:
    tested = "".join(p.read_text() for p in (PROM / "tests").glob("*.yml"))
    untested = [a["alert"] for a in _alerts() if f"alertname: {a['alert']}\n" not in tested]
    assert untested == []


def test_every_alert_has_a_severity_summary_description_and_a_runbook_in_the_docs() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", docs, re.M)
    }
    for alert in _alerts():
        name = str(alert["alert"])
        labels = alert["labels"]
        annotations = alert["annotations"]
        assert isinstance(labels, dict) and labels.get("severity") in ("page", "ticket"), name
        assert isinstance(annotations, dict)
        assert annotations.get("summary") and annotations.get("description"), name
        url = str(annotations["runbook_url"])
        assert url.endswith(f"docs/operations.md#{name.lower()}"), name
        assert name.lower() in anchors, f"docs/operations.md has no runbook heading for {name}"


def test_rules_use_only_metrics_the_services_and_ops_tools_export() -> None:
    known = known_metrics()
    unknown = {
        (r.get("alert") or r.get("record"), m) for r in _rules() for m in metrics_in(str(r["expr"])) if m not in known
    }
    assert unknown == set()


def test_the_scrape_config_scrapes_every_service_on_its_agreed_port() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    # The ports make run uses (leadpipe.devstack.stack.SERVICES), not a copy of them.
    assert targets == {f"leadpipe-{s.name}": [f"127.0.0.1:{s.port}"] for s in SERVICES}
    compose = yaml.safe_load((PROM / "prometheus.compose.yml").read_text())
    assert {job["job_name"] for job in compose["scrape_configs"]} == set(targets)
