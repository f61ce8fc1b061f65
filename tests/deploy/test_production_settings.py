"""The Kubernetes deployment runs with LEADPIPE_ENV=production, and its Secret lists every secret
setting a deployed process has, so an operator filling it in sees them all (a process refuses to
start while one still holds a development value or a CHANGE-ME placeholder)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from leadpipe.exporter import ExporterSettings
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.settings import ServiceSettings
from services.ingest.config import IngestSettings
from services.notifier.config import NotifierSettings
from services.nurture.config import NurtureSettings
from services.scoring.config import ScoringSettings
from tests.deploy.known_metrics import ROOT

#: Deployment -> the settings class its process builds.
DEPLOYED: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "scoring": ScoringSettings,
    "nurture": NurtureSettings,
    "notifier": NotifierSettings,
    "exporter": ExporterSettings,
    "canary": OpsSettings,
}


def _config() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "config.yml").read_text())
    return {d["metadata"]["name"]: d for d in docs if d}


def test_the_cluster_runs_in_production():
    assert _config()["leadpipe-config"]["data"]["LEADPIPE_ENV"] == "production"


@pytest.mark.parametrize("deployment", sorted(DEPLOYED))
def test_the_secret_lists_every_secret_setting_of_every_deployed_process(deployment: str, monkeypatch):
    monkeypatch.delenv("LEADPIPE_ENV", raising=False)
    settings = DEPLOYED[deployment](kafka_bootstrap_servers="k:9092", redis_url="redis://r")
    needed = set(settings.development_secrets())
    assert needed, "every process has at least the privacy secret: the check must see something"
    listed = set(_config()["leadpipe-secrets"]["stringData"])
    assert needed - listed == set(), f"{deployment}: secrets missing from deploy/k8s/config.yml"


def test_the_secrets_placeholders_are_refused_in_production(monkeypatch):
    monkeypatch.setenv("LEADPIPE_ENV", "production")
    for name, value in _config()["leadpipe-secrets"]["stringData"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    with pytest.raises(ValueError, match="LEADPIPE_LINK_SECRET"):
        IngestSettings()
