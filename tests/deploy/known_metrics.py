"""The metric names alert rules and dashboards may use: the agreed names in docs/contracts.md
plus what the exporter and the canary register (read from their real registries)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
PROMQL_FUNCTIONS_AND_KEYWORDS = {"up"}
_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def contract_metrics() -> set[str]:
    text = (ROOT / "docs" / "contracts.md").read_text()
    return set(re.findall(r"\b(leadpipe_[a-z0-9_]+)", text))


def ops_metrics() -> set[str]:
    from leadpipe.canary import CanaryMetrics
    from leadpipe.exporter import ExporterMetrics

    names: set[str] = set()
    for make in (ExporterMetrics, CanaryMetrics):
        registry = CollectorRegistry()
        make(registry)
        for family in registry.collect():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def known_metrics() -> set[str]:
    return contract_metrics() | ops_metrics() | PROMQL_FUNCTIONS_AND_KEYWORDS


def base_name(series: str) -> str:
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def metrics_in(expr: str) -> set[str]:
    """Metric names an expression selects (``leadpipe_*`` and ``up``), without label values."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    found = set(re.findall(r"\b(leadpipe_[a-z0-9_]+)", without_strings))
    if re.search(r"\bup\s*\{", without_strings):
        found.add("up")
    return {base_name(n) for n in found}
