"""The benchmarks' CPU accounting from /proc: a process tree's CPU seconds, children included."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import proc_cpu
from bench.idle_bench import read_pids

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def test_a_tree_counts_a_busy_child_and_a_finished_one(tmp_path: Path) -> None:
    # The parent spends 0.3 s of CPU in a child it waits for (reaped: cutime), then starts
    # another child still running at the snapshot (a live descendant).
    script = (
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {BUSY!r}])\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(tmp_path / 'spawned')!r}, 'w').close()\n"
        "import time; time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "spawned").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        used = proc_cpu.snapshot({"parent": parent.pid})["parent"]
        assert used >= 0.25  # the reaped child's 0.3 s (cutime), however busy the machine is
        assert len(proc_cpu.tree(parent.pid)) == 2
    finally:
        for pid in reversed(proc_cpu.tree(parent.pid)):
            subprocess.run(["kill", "-9", str(pid)])
        parent.wait()


def test_a_process_that_is_gone_used_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", "pass"])
    assert done.returncode == 0
    assert proc_cpu.process_cpu_s(2**22 + 7) == 0.0
    assert proc_cpu.delta({"x": 1.0}, {}) == {"x": 0.0}


def test_a_bad_pids_file_is_refused_naming_the_line(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.write_text("broker 12\nredis twelve\n")
    with pytest.raises(SystemExit, match=r"pids:2: expected 'name pid', got 'redis twelve'"):
        read_pids(pids)


def test_a_pids_file_is_read_by_name(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.write_text("broker 12\n\nredis 13\n")
    assert read_pids(pids) == {"broker": 12, "redis": 13}
