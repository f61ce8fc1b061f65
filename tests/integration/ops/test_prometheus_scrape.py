"""A real Prometheus server scraping the embedded stack (`leadpipe dev up`).

Starts the stack on free ports, a Prometheus with a 1 s scrape interval and our rule files,
posts a form to ingest and watches, through Prometheus' HTTP API, the capture counters and
scoring's consumed counter rise, every target up and the exporter's lag series present.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.devstack.up import available_services
from tests.support.tools import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[3]


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _value(prom: str, expr: str) -> float | None:
    result = _query(prom, expr)
    return float(result[0]["value"][1]) if result else None


def _eventually(prom: str, expr: str, check: Any, timeout_s: float = 45.0) -> float:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = _value(prom, expr)
        if last is not None and check(last):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{expr} never satisfied the check; last value {last}")


def test_prometheus_scrapes_the_stack_and_the_pipeline_series_move(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus", "prometheus")
    services = [s.name for s in available_services()]
    ports = {name: free_port() for name in services}
    state = tmp_path / "stack"
    ready = tmp_path / "ready"
    env = {f"LEADPIPE_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": "", "REDIS_URL": "", "LEADPIPE_BROKER_PORT": str(free_port())}
    env |= {"EXPORTER_INTERVAL_S": "1"}
    stack = ManagedProcess(
        "stack",
        [sys.executable, "-m", "leadpipe.cli", "dev", "up", "--state-dir", str(state), "--ready-file", str(ready)],
        tmp_path / "stack.log",
        env=env,
        cwd=ROOT,
    ).start()
    prom_port = free_port()
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / f) for f in ("recording.rules.yml", "alert.rules.yml")]
    config["scrape_configs"] = [
        job | {"static_configs": [{"targets": [f"127.0.0.1:{ports[job['job_name'].removeprefix('leadpipe-')]}"]}]}
        for job in config["scrape_configs"]
        if job["job_name"].removeprefix("leadpipe-") in ports
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = ManagedProcess(
        "prometheus",
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path / "prometheus.log",
    ).start()
    try:
        deadline = time.monotonic() + 90
        while not ready.exists():
            assert stack.alive(), f"stack exited:\n{(tmp_path / 'stack.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"stack not up:\n{(tmp_path / 'stack.log').read_text()[-3000:]}"
            time.sleep(0.3)
        wait_for_port(prom_port, timeout_s=30, proc=prom.proc)
        api = f"http://127.0.0.1:{prom_port}"

        up_jobs = len(ports)
        _eventually(api, 'count(up{job=~"leadpipe-.+"} == 1)', lambda v: v == up_jobs)
        assert "ingest" in ports and "scoring" in ports, f"services available: {services}"

        before = _value(api, 'sum(leadpipe_events_consumed_total{service="scoring",topic="lead.captured.v1"})') or 0.0
        ingest = f"http://127.0.0.1:{ports['ingest']}"
        for i in range(3):
            resp = httpx.post(
                f"{ingest}/v1/forms/demo",
                json={"email": f"prom-{i}@example.com", "first_name": "P", "company": "C", "marketing_consent": "yes"},
                timeout=10,
            )
            assert resp.status_code == 202, resp.text

        _eventually(
            api,
            'sum(leadpipe_ingest_events_published_total{type="lead.captured",source="forms"})',
            lambda v: v >= 3,
        )
        _eventually(
            api,
            'sum(leadpipe_events_consumed_total{service="scoring",topic="lead.captured.v1"})',
            lambda v: v >= before + 3,
            timeout_s=60,
        )
        _eventually(api, 'count(leadpipe_last_event_processed_timestamp_seconds{service="scoring"})', lambda v: v >= 1)
        if "exporter" in ports:
            _eventually(api, 'count(leadpipe_topic_records{topic="lead.captured.v1"})', lambda v: v == 1)
            _eventually(api, 'count(leadpipe_consumer_lag{topic="lead.captured.v1"})', lambda v: v >= 1)
        # The recording rules evaluate on the scraped data.
        _eventually(api, "count(leadpipe:events_consumed:rate5m)", lambda v: v >= 1)
    finally:
        prom.stop()
        stack.stop(timeout_s=20)
    logs = "".join(p.read_text(errors="replace") for p in (state / "logs").glob("*.log"))
    assert "prom-0@example.com" not in logs
