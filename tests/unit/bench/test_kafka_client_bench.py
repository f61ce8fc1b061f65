"""bench/kafka_client_bench.py's failure paths (a client process that never gets ready, or fails
after it did: named, and no process left behind) and its summary's ratios."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

import pytest

from bench import kafka_client_bench


def fake_client(monkeypatch: pytest.MonkeyPatch, script: str) -> list[subprocess.Popen[Any]]:
    started = []
    real_popen = kafka_client_bench.subprocess.Popen

    def popen(cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = real_popen([sys.executable, "-c", script], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(kafka_client_bench.subprocess, "Popen", popen)
    return started


ARGS = argparse.Namespace(partitions=6, records=10, rate=50.0)


def test_a_client_that_never_gets_ready_stops_the_run_naming_it_and_what_it_said(monkeypatch: pytest.MonkeyPatch):
    started = fake_client(monkeypatch, "print('no broker', flush=True); import time; time.sleep(60)")
    with pytest.raises(RuntimeError, match="the librdkafka consumer did not get ready: 'no broker"):
        kafka_client_bench.measure("127.0.0.1:1", os.getpid(), ["t"], ARGS, "consume", "librdkafka")
    (proc,) = started
    assert proc.poll() is not None  # killed, not left running


def test_a_client_that_fails_after_its_go_is_named_with_its_exit_status(monkeypatch: pytest.MonkeyPatch):
    started = fake_client(monkeypatch, "import sys; print('ready', flush=True); sys.stdin.readline(); sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"the aiokafka producer failed \(3\)"):
        kafka_client_bench.measure("127.0.0.1:1", os.getpid(), ["t"], ARGS, "produce", "aiokafka")
    (proc,) = started
    assert proc.poll() == 3


def test_the_summary_gives_medians_and_librdkafka_over_aiokafka_per_round():
    def row(what: str, client: str, n: int, us: float) -> dict[str, object]:
        return {"what": what, "client": client, "round": n, "client_us_per_record": us, "broker_us_per_record": 1000.0}

    rows = [row("consume", "aiokafka", 1, 600.0), row("consume", "librdkafka", 1, 150.0),
            row("consume", "librdkafka", 2, 200.0), row("consume", "aiokafka", 2, 800.0),
            row("produce", "aiokafka", 1, 700.0), row("produce", "librdkafka", 1, 350.0),
            row("produce", "aiokafka", 2, 500.0), row("produce", "librdkafka", 2, 300.0)]  # fmt: skip
    summary = kafka_client_bench.summarise(rows, 2)
    assert summary["consume"]["median"]["aiokafka"]["client_us_per_record"] == 700.0
    assert summary["consume"]["librdkafka_over_aiokafka"]["client_us_per_record"] == [0.25, 0.25]
    assert summary["produce"]["librdkafka_over_aiokafka"]["client_us_per_record"] == [0.5, 0.6]
    assert summary["produce"]["librdkafka_over_aiokafka"]["broker_us_per_record"] == [1.0, 1.0]
