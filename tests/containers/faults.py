"""Faults between containers, and the chaos audit after them.

- ``loaded(stack, fault)``: the chaos load into ingest-1, ``fault`` made after 15 accepted
  captures, 15 more accepted after it; then the chaos audit (``tests.chaos.audit``) repeated
  until it passes, finds a problem that waiting cannot heal, or ``settle_s`` runs out. The
  tests share one stack and the audit looks at whole topics (every dead letter, every
  notification without an outcome): problems already there before the load started are an
  earlier test's (which failed on them) and are left out of this test's verdict, and said so.
- ``cut_off(stack, container, peer)``: every packet between two containers dropped (nftables
  rules in ``container``'s network namespace, entered from the host with ``nsenter``): a
  partition between those two only, the rest of the network still reachable, connections
  hanging rather than refused, as when a switch drops a link.
- ``kill9_main(stack, container)``: SIGKILL the container's main process from the host and wait
  until podman's restart policy has started it again.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.chaos.audit import OUTCOME, Accepted, Report, audit, dump, read_observed
from tests.chaos.driver import DriverStats, LoadDriver
from tests.containers.conftest import ContainerStack

#: A problem no amount of waiting removes: the audit stops at once.
FINAL = frozenset({"double_send", "conflicting_outcomes", "dead_lettered", "undecodable"})
TABLE = "leadpipe_fault"


@dataclass
class Verdict:
    report: Report
    stats: DriverStats
    accepted: int
    settled_s: float


def loaded(
    stack: ContainerStack, fault: Callable[[LoadDriver], None], *, seed: int, settle_s: float = 300.0
) -> Verdict:
    earlier = set(audit(Accepted(), asyncio.run(read_observed(stack.bootstrap, stack.outbox))).problems)
    if earlier:
        print(f"\n{len(earlier)} problems on the topics before this test (an earlier test's): not counted")
    driver = LoadDriver(stack.url("ingest", 1, 8080), rate_per_s=6.0, seed=seed).start()
    try:
        driver.wait_accepted(15, timeout_s=90)
        fault(driver)
        driver.wait_accepted(15, timeout_s=120)
    finally:
        driver.stop()
    stats = driver.stats
    print(f"load: {dict(stats.actions)}, responses: {dict(stats.statuses)}, delivery: {dict(stats.delivery)}")
    stopped = time.monotonic()
    deadline = stopped + settle_s
    while True:
        seen = asyncio.run(read_observed(stack.bootstrap, stack.outbox))
        report = audit(driver.accepted, seen, now=datetime.now(UTC))
        report.problems = [p for p in report.problems if p not in earlier]
        if report.ok or FINAL & set(report.kinds()) or time.monotonic() > deadline:
            break
        time.sleep(3.0)
    settled = time.monotonic() - stopped
    if not report.ok:
        dump(driver.accepted, seen, stack.outbox.parent / f"audit-seed-{seed}")
    outcomes = Counter(r.event.data.status for r in seen.topic(OUTCOME) if r.event is not None)
    print(f"notification outcomes: {dict(outcomes)}, outbox lines: {len(seen.sends)}")
    print(f"audit after the load stopped: {report.summary()} (settled in {settled:.1f}s)")
    return Verdict(report, stats, driver.accepted_count(), settled)


def _pid(stack: ContainerStack, container: str) -> int:
    return int(stack.podman("inspect", "--format", "{{.State.Pid}}", container).strip())


def _nft(pid: int, *rule: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-n", "nft", *rule], check=True, capture_output=True, text=True)


@contextmanager
def cut_off(stack: ContainerStack, container: str, peer: str) -> Iterator[None]:
    pid, address = _pid(stack, container), stack.ip(peer)
    _nft(pid, "add", "table", "ip", TABLE)
    _nft(pid, "add", "chain", "ip", TABLE, "out", "{ type filter hook output priority 0; }")
    _nft(pid, "add", "chain", "ip", TABLE, "in", "{ type filter hook input priority 0; }")
    _nft(pid, "add", "rule", "ip", TABLE, "out", "ip", "daddr", address, "drop")
    _nft(pid, "add", "rule", "ip", TABLE, "in", "ip", "saddr", address, "drop")
    try:
        yield
    finally:
        # The namespace is gone if the container restarted meanwhile: then so are the rules.
        if _pid(stack, container) == pid:
            _nft(pid, "delete", "table", "ip", TABLE)


def restarts(stack: ContainerStack, container: str) -> int:
    return int(stack.podman("inspect", "--format", "{{.RestartCount}}", container).strip())


def kill9_main(stack: ContainerStack, container: str, timeout_s: float = 60.0) -> float:
    """SIGKILL ``container``'s main process; returns seconds until podman had it running again."""
    before, pid = restarts(stack, container), _pid(stack, container)
    killed = time.monotonic()
    subprocess.run(["kill", "-9", str(pid)], check=True)
    while True:
        state = stack.podman("inspect", "--format", "{{.State.Status}} {{.State.Pid}}", container).split()
        if restarts(stack, container) > before and state[0] == "running" and int(state[1]) != pid:
            return time.monotonic() - killed
        assert time.monotonic() - killed < timeout_s, f"{container} not restarted by its policy: {state}"
        time.sleep(0.5)
