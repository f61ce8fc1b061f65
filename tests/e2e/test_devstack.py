"""`make run`'s stack: up in under 60 s, says where things are, and Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leadpipe.devstack.processes import free_port
from leadpipe.devstack.stack import SERVICES

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent will reap it).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_the_dev_stack_comes_up_reports_where_things_are_and_stops_cleanly_on_ctrl_c(tmp_path: Path):
    state = tmp_path / "state"
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env |= {"LEADPIPE_BROKER_PORT": str(free_port())}
    env |= {f"LEADPIPE_{spec.name.upper()}_PORT": str(free_port()) for spec in SERVICES}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadpipe.cli", "dev", "up", "--state-dir", str(state), "--ready-file", str(ready)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while not ready.exists() and proc.poll() is None and time.monotonic() - started < 90:
            time.sleep(0.2)
        took = time.monotonic() - started
        assert ready.exists(), f"stack not up; exit={proc.poll()}"
        assert took < 60, f"took {took:.1f}s to come up"
        summary = ready.read_text()
        for needle in ("broker", "redis", "outbox", "logs"):
            assert needle in summary
        pids = [int(line.split()[1]) for line in (state / "pids").read_text().splitlines()]
        assert len(pids) >= 2 and all(_alive(p) for p in pids)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert "stopped, no process left behind" in out
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "orphan processes after Ctrl-C"
