"""The Grafana dashboard parses and every panel queries metrics that exist."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.known_metrics import ROOT, known_metrics, metrics_in

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "leadpipe.json"


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_panel_has_a_query_on_a_known_metric() -> None:
    known = known_metrics()
    for panel in _panels():
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, panel["title"]
        for expr in exprs:
            used = metrics_in(expr)
            assert used, f"{panel['title']}: {expr} selects no metric"
            assert used <= known, f"{panel['title']}: unknown {used - known}"


def test_the_dashboard_covers_the_pipeline_signals() -> None:
    used = {m for p in _panels() for t in p["targets"] for m in metrics_in(t["expr"])}
    for signal in (
        "leadpipe_events_consumed_total",
        "leadpipe_events_published_total",
        "leadpipe_events_dead_lettered_total",
        "leadpipe_event_processing_seconds",
        "leadpipe_consumer_lag",
        "leadpipe_last_event_processed_timestamp_seconds",
        "leadpipe_ingest_spool_depth",
        "leadpipe_nurture_touches_overdue",
        "leadpipe_nurture_sla_breaches_total",
        "leadpipe_capture_to_rep_alert_seconds",
        "leadpipe_topic_records",
        "leadpipe_canary_last_success_timestamp_seconds",
    ):
        assert signal in used, signal


def test_panels_do_not_overlap_and_ids_are_unique() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
