"""`make run`'s stack as a user meets it: up when every service is ready, durable across a restart
(Kafka keeps every topic, offset and group), one stack per state dir, Ctrl-C or SIGTERM stops
everything within 15 s (also during start-up), and a supervisor killed with SIGKILL takes its
broker, Redis and services with it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from bench.raw_chain import FORM_FIELDS
from leadpipe.devstack.processes import free_port
from leadpipe.devstack.stack import SERVICES, keystore_url
from leadpipe.runtime.keystore import KeyStoreSettings, keyring_from
from schemas.pii import use_keyring
from tests.chaos.audit import read_topics

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
STOP_WITHIN_S = 15.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent will reap it).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), so a test can check none outlives it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return [p for p in found if _alive(p)]


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


class DevUp:
    """One `leadpipe dev up` supervisor process on free ports."""

    def __init__(self, state: Path, env: dict[str, str], ready: Path):
        self.state, self.env, self.ready = state, env, ready

    def start(self) -> subprocess.Popen[str]:
        self.ready.unlink(missing_ok=True)
        # Started with SIGINT ignored, as a shell without job control starts a background command
        # (CI does): Ctrl-C must stop the stack all the same.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leadpipe.cli", "dev", "up", "--state-dir", str(self.state),
             "--ready-file", str(self.ready)],
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip
        return self.proc

    def wait_up(self, timeout_s: float = 120.0) -> float:
        started = time.monotonic()
        while not self.ready.exists() and self.proc.poll() is None and time.monotonic() - started < timeout_s:
            time.sleep(0.2)
        if not self.ready.exists():
            out = self.stop()
            raise AssertionError(f"stack not up within {timeout_s}s; exit={self.proc.returncode}\n{out[-3000:]}")
        return time.monotonic() - started

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Signal the supervisor and return its output; kills it if it overruns (never hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=STOP_WITHIN_S + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # its children die with it (parent-death signal)
            out, _ = self.proc.communicate(timeout=10)
            raise AssertionError(f"supervisor did not stop within {STOP_WITHIN_S + 10}s of signal {sig}") from None
        return out


@contextmanager
def dev_up(tmp_path: Path) -> Iterator[DevUp]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env |= {"LEADPIPE_BROKER_PORT": str(free_port())}
    env |= {f"LEADPIPE_{spec.name.upper()}_PORT": str(free_port()) for spec in SERVICES}
    up = DevUp(tmp_path / "state", env, tmp_path / "ready")
    try:
        yield up
    finally:
        if getattr(up, "proc", None) is not None and up.proc.poll() is None:
            up.proc.kill()
            up.proc.communicate(timeout=10)


def _ingest(up: DevUp) -> str:
    return f"http://127.0.0.1:{up.env['LEADPIPE_INGEST_PORT']}"


def _rep_alerts(state: Path, lead_id: str) -> list[dict[str, object]]:
    path = state / "outbox" / "outbox.jsonl"
    if not path.exists():
        return []
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [e for e in entries if e.get("lead_id") == lead_id and e.get("audience") == "rep"]


def _post(up: DevUp, email: str) -> str:
    resp = httpx.post(_ingest(up) + "/v1/forms/demo", json=FORM_FIELDS | {"email": email}, timeout=10)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["event_id"])


def _lead_of(up: DevUp, email: str, timeout_s: float = 30.0) -> str:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        scored = asyncio.run(read_topics(f"127.0.0.1:{up.env['LEADPIPE_BROKER_PORT']}", ["lead.scored.v1"]))
        for rec in scored["lead.scored.v1"]:
            if rec.event is not None and rec.event.data.profile.email == email:
                return str(rec.event.data.lead_id)
        time.sleep(0.5)
    raise AssertionError(f"no lead.scored for {email} within {timeout_s}s")


@contextmanager
def _stack_keys(up: DevUp) -> Iterator[None]:
    """The records' personal fields are sealed with the stack's data keys (crypto-shredding):
    this test reads them with the same key store, as the services do."""
    redis_url = re.search(r"redis\s+(redis://\S+)", up.ready.read_text())
    assert redis_url, up.ready.read_text()
    previous = use_keyring(keyring_from(KeyStoreSettings(leadpipe_keystore_url=keystore_url(redis_url[1]))))
    try:
        yield
    finally:
        use_keyring(previous)


def test_the_dev_stack_is_durable_across_a_restart_and_one_per_state_dir(tmp_path: Path):
    email = f"durable-{uuid.uuid4().hex[:8]}@example.com"
    with dev_up(tmp_path) as up:
        up.start()
        took = up.wait_up()
        assert took < 60, f"took {took:.1f}s to come up"
        summary = up.ready.read_text()
        for needle in ("every service ready", "kafka", "redis", "outbox", "logs"):
            assert needle in summary
        second = subprocess.run(
            [sys.executable, "-m", "leadpipe.cli", "dev", "up", "--state-dir", str(up.state)],
            cwd=REPO, env=up.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 3 and "already running" in second.stderr, second.stderr

        capture_id = _post(up, email)
        with _stack_keys(up):
            lead = _lead_of(up, email)
        deadline = time.monotonic() + 30
        while not _rep_alerts(up.state, lead) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(_rep_alerts(up.state, lead)) == 1, "the grade-A lead's rep alert was not sent"
        pids = [int(line.split()[1]) for line in (up.state / "pids").read_text().splitlines()]
        t0 = time.monotonic()
        out = up.stop(signal.SIGINT)
        assert time.monotonic() - t0 < STOP_WITHIN_S, out[-2000:]
        assert "no process left behind" in out
        assert not _wait_gone(pids, 5), "processes left after Ctrl-C"

        # Started again: the capture is still on its topic, and the same person posting again is
        # the same lead, with no second alert.
        up.start()
        up.wait_up()
        bootstrap = f"127.0.0.1:{up.env['LEADPIPE_BROKER_PORT']}"
        import asyncio

        with _stack_keys(up):
            captured = asyncio.run(read_topics(bootstrap, ["lead.captured.v1"]))["lead.captured.v1"]
            assert capture_id in {r.event.id for r in captured if r.event is not None}
            _post(up, email)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                scored = asyncio.run(read_topics(bootstrap, ["lead.scored.v1"]))["lead.scored.v1"]
                mine = [r for r in scored if r.event is not None and r.event.data.profile.email == email]
                if len(mine) >= 2:
                    break
                time.sleep(0.5)
            assert {str(r.event.data.lead_id) for r in mine if r.event is not None} == {lead}
            time.sleep(2.0)  # an alert, if one were (wrongly) requested, is sent within a second
            assert len(_rep_alerts(up.state, lead)) == 1, "a repeat post alerted the rep again"

        # The supervisor killed with SIGKILL: its broker, Redis and services go with it.
        children = _children_of(up.proc.pid)
        assert len(children) >= 6, children
        up.proc.kill()
        up.proc.communicate(timeout=10)
        assert not _wait_gone(children, 10), "processes outlived a SIGKILLed supervisor"


def test_ctrl_c_during_start_up_stops_everything_within_15_s(tmp_path: Path):
    with dev_up(tmp_path) as up:
        up.start()
        deadline = time.monotonic() + 60
        # Wait until the broker and some services are running, then interrupt mid-start.
        while len(_children_of(up.proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = _children_of(up.proc.pid)
        assert children, "nothing started"
        t0 = time.monotonic()
        out = up.stop(signal.SIGTERM)
        assert time.monotonic() - t0 < STOP_WITHIN_S, out[-2000:]
        assert not up.ready.exists()
        assert not _wait_gone(children, 5), "processes left after SIGTERM during start-up"
