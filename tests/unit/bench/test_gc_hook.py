"""bench/gc_hook: the measuring hook writes a process's collections and their time, and the
report sums them per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.gc_hook.report import report

HOOK = Path(__file__).resolve().parents[3] / "bench" / "gc_hook"


def test_a_process_started_with_the_hook_writes_its_collections_and_the_report_sums_them(tmp_path: Path) -> None:
    env = os.environ | {"GCSTAT_DIR": str(tmp_path), "PYTHONPATH": str(HOOK)}
    code = "import gc\nfor _ in range(3): gc.collect()\nx = [[i] for i in range(50_000)]"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    (written,) = tmp_path.glob("*.json")
    doc = json.loads(written.read_text())
    assert doc["collections"][2] >= 3  # the three full collections asked for
    assert doc["collections"][0] >= 1  # 50,000 lists: young collections on the way
    assert all(s >= 0 for s in doc["seconds"]) and sum(doc["seconds"]) > 0
    rows = report(tmp_path)
    assert list(rows) == ["-c"]
    assert rows["-c"]["total_s"] == round(sum(doc["seconds"]), 3)


def test_without_the_directory_set_the_hook_writes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GCSTAT_DIR"} | {"PYTHONPATH": str(HOOK)}
    out = subprocess.run(
        [sys.executable, "-c", "import gc, sys; print(len(gc.callbacks))"],
        env=env, check=True, timeout=60, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.stdout.strip() == "0"
    assert not list(tmp_path.iterdir())
