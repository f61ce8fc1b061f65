"""One chaos run: a real stack, a steady load, faults in a given order, then the audit.

Faults (``Fault.kind``):
- ``kill9``: SIGKILL a service's process group mid-stream, leave it dead for a moment while
  the load goes on, start it again (same port, same state dir) and wait until it is ready;
- ``broker_freeze``: SIGSTOP a broker for ``seconds`` (10 by default), then SIGCONT: a broker
  that hangs (connections stall, requests time out, ingest spools, workers retry);
- ``broker_restart``: stop a broker with SIGTERM (a controlled shutdown), leave it down for
  ``seconds``, start it again on its data; ``broker_kill9``: the same with SIGKILL (a crash; its
  log is recovered at start). ``target="leader"`` picks the node leading the most pipeline
  partitions. On a cluster the next fault waits until every partition is in sync again;
- ``leader_cut_off``: the two brokers following the busiest leader are frozen (SIGSTOP) for
  ``seconds`` while the load goes on, so nothing new reaches a second replica; then the leader
  is killed with SIGKILL, the followers thawed (one of them becomes leader) and the old leader
  restarted (it truncates what only it had). With ``acks=all`` nothing was acknowledged during
  the freeze (ingest spooled it); with ``KAFKA_ACKS=1`` ingest answered 202 for records only the
  dead leader had, and the audit finds them lost (``LEADPIPE_CHAOS_ACKS=1`` shows it);
- ``rolling_restart``: every broker in turn stopped with SIGTERM and started again, each back
  in sync before the next (a rolling upgrade);
- ``stack_restart``: the whole stack (services, brokers, Redis) stopped with SIGTERM and started
  again, as Ctrl-C and a second ``make run`` do; ``stack_crash``: everything SIGKILLed at once
  (the host loses power), then started again;
- ``redis_restart``: SIGKILL redis-server and start it again on the same port, either with
  its append-only file (state survives as far as it was written) or wiped (the services'
  database empty: they must rebuild from the topics; the data-key store, a store of its own in
  production, is kept, see ``Stack.restart_redis``).

After the faults the load stops and the audit (``tests.chaos.audit``) is repeated until it
passes or ``settle_s`` runs out; the last report is the verdict.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from leadpipe.devstack.stack import PIPELINE, Stack
from tests.chaos.audit import PIPELINE_TOPICS, Report, audit, dump, read_observed
from tests.chaos.driver import FORMS_DIR, DriverStats, LoadDriver

WORKERS = ("scoring", "nurture", "notifier")


@dataclass(frozen=True)
class Fault:
    kind: str  # kill9 | broker_freeze | broker_restart | broker_kill9 | rolling_restart | redis_restart
    #            | stack_restart | stack_crash
    target: str = ""  # the service for kill9; a node id or "leader" for broker faults
    seconds: float = 10.0  # broker_freeze: how long; kill9: how long the service stays dead
    wipe: bool = False  # redis_restart

    def __str__(self) -> str:
        if self.kind == "kill9":
            return f"kill -9 {self.target}"
        if self.kind == "broker_freeze":
            return f"broker frozen {self.seconds:g}s"
        if self.kind in ("broker_restart", "broker_kill9"):
            how = "SIGTERM" if self.kind == "broker_restart" else "kill -9"
            return f"{how} broker {self.target or '1'}, down {self.seconds:g}s"
        if self.kind == "rolling_restart":
            return "rolling restart of every broker"
        if self.kind == "leader_cut_off":
            return f"busiest leader cut off from its followers for {self.seconds:g}s, then killed"
        if self.kind == "stack_restart":
            return f"whole stack stopped (SIGTERM) and started again after {self.seconds:g}s"
        if self.kind == "stack_crash":
            return f"whole stack killed (SIGKILL) and started again after {self.seconds:g}s"
        return f"redis restart ({'wiped' if self.wipe else 'AOF kept'})"


def short_plan() -> list[Fault]:
    """CI, one broker: every service killed once, the broker stopped and started again, Redis
    restarted with its data, the whole stack stopped with SIGTERM and started again, then
    killed at once with SIGKILL (a host reboot) and started again."""
    return [
        *(Fault("kill9", name, seconds=1.0) for name in ("scoring", "nurture", "notifier", "ingest")),
        Fault("broker_restart", "1", seconds=5.0),
        Fault("redis_restart", wipe=False),
        Fault("stack_restart", seconds=1.0),
        Fault("stack_crash", seconds=1.0),
    ]


def cluster_plan() -> list[Fault]:
    """CI, three brokers: the busiest leader killed with SIGKILL under load and restarted 10 s
    later; the busiest leader cut off from its followers, then killed; a rolling restart of all
    three."""
    return [
        Fault("broker_kill9", "leader", seconds=10.0),
        Fault("leader_cut_off", seconds=5.0),
        Fault("rolling_restart"),
    ]


def long_plan(rounds: int, seed: int, *, wipe: bool = True) -> list[Fault]:
    """``rounds`` of the short plan's faults in a random order each round, Redis wiped."""
    rng = random.Random(seed)
    plan: list[Fault] = []
    for _ in range(rounds):
        faults = [
            *(
                Fault("kill9", name, seconds=rng.uniform(0.2, 5.0))
                for name in ("scoring", "nurture", "notifier", "ingest")
            ),
            Fault("broker_freeze", seconds=10.0),
            Fault("broker_kill9", "1", seconds=rng.uniform(1.0, 10.0)),
            Fault("redis_restart", wipe=wipe),
            Fault("stack_crash", seconds=1.0),
        ]
        rng.shuffle(faults)
        plan.extend(faults)
    return plan


@dataclass
class Outcome:
    report: Report
    stats: DriverStats
    timings: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def stack_env() -> dict[str, str]:
    return {
        "INGEST_FORMS_DIR": str(FORMS_DIR),
        # A killed notifier's in-flight claim is taken over after this (default 30 s); a
        # single replica makes a shorter lease safe and keeps the run short.
        "NOTIFIER_SEND_LEASE_S": "5",
        # Rep alerts all go to a handful of reps: the per-recipient limit would defer them.
        "NOTIFIER_RECIPIENT_LIMIT": "1000000",
        "LOG_LEVEL": "INFO",
        # LEADPIPE_CHAOS_ACKS=1 weakens every producer on purpose: the audit must then fail.
        "KAFKA_ACKS": os.environ.get("LEADPIPE_CHAOS_ACKS", "all"),
    }


def wait_ready(stack: Stack, name: str, timeout_s: float = 90.0) -> None:
    def ready() -> bool:
        try:
            return httpx.get(stack.url(name) + "/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    stack.wait_until(ready, timeout_s=timeout_s, interval_s=0.3)


def _node(stack: Stack, target: str) -> int:
    assert stack.kafka is not None, "broker faults need the stack's own brokers"
    if target == "leader":
        return stack.kafka.busiest_leader(PIPELINE_TOPICS)
    return int(target or "1")


def apply(stack: Stack, fault: Fault, say: Callable[[str], None] = print) -> None:
    if fault.kind == "kill9":
        stack.kill9(fault.target)
        time.sleep(fault.seconds)
        stack.restart(fault.target)
        wait_ready(stack, fault.target)
    elif fault.kind == "broker_freeze":
        with stack.broker_paused(_node(stack, fault.target)):
            time.sleep(fault.seconds)
    elif fault.kind in ("broker_restart", "broker_kill9"):
        node = _node(stack, fault.target)
        say(f"  broker {node} goes down")
        (stack.kill9_broker if fault.kind == "broker_kill9" else stack.stop_broker)(node)
        time.sleep(fault.seconds)
        stack.restart_broker(node)
        assert stack.kafka is not None
        stack.kafka.wait_in_sync()
    elif fault.kind == "leader_cut_off":
        assert stack.kafka is not None
        leader = _node(stack, "leader")
        followers = [n.process for n in stack.kafka.node_list if n.node_id != leader and n.process is not None]
        say(
            f"  brokers {[n.node_id for n in stack.kafka.node_list if n.node_id != leader]} frozen, leader {leader} alone"
        )
        for proc in followers:
            os.killpg(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(fault.seconds)
            stack.kill9_broker(leader)
        finally:
            for proc in followers:
                os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(3.0)
        stack.restart_broker(leader)
        stack.kafka.wait_in_sync()
    elif fault.kind == "rolling_restart":
        assert stack.kafka is not None
        for node in [n.node_id for n in stack.kafka.node_list]:
            stack.stop_broker(node)
            stack.restart_broker(node)
            stack.kafka.wait_in_sync()
            say(f"  broker {node} restarted and back in sync")
    elif fault.kind == "redis_restart":
        stack.restart_redis(wipe=fault.wipe)
    elif fault.kind in ("stack_restart", "stack_crash"):
        if fault.kind == "stack_crash":
            stack.crash()
        else:
            stack.stop()
        time.sleep(fault.seconds)
        stack.start_again()
    else:
        raise ValueError(f"unknown fault kind {fault.kind!r}")


def final_audit(stack: Stack, driver: LoadDriver, settle_s: float, say: Callable[[str], None]) -> Report:
    deadline = time.monotonic() + settle_s
    while True:
        seen = asyncio.run(read_observed(stack.bootstrap, stack.outbox))
        report = audit(driver.accepted, seen, now=datetime.now(UTC))
        if report.ok:
            return report
        dead = stack.first_dead()
        if dead is not None:
            say(f"{dead.name} died (log: {dead.log_path})")
        # Double sends never heal: waiting longer cannot change the verdict.
        final = {"double_send", "conflicting_outcomes", "dead_lettered", "undecodable"} & set(report.kinds())
        if dead is not None or final or time.monotonic() > deadline:
            dump(driver.accepted, seen, stack.state_dir / "audit")
            say(f"what the audit saw: {stack.state_dir / 'audit'}")
            return report
        time.sleep(3.0)


def run(
    state_dir: Path,
    faults: list[Fault],
    *,
    rate_per_s: float = 8.0,
    between: int = 15,
    seed: int = 0,
    settle_s: float = 120.0,
    say: Callable[[str], None] = print,
    brokers: int = 1,
) -> Outcome:
    """Start a stack, load it, make ``faults`` one after another (``between`` accepted captures
    apart, so each fault happens mid-stream), stop the load and audit."""
    timings: dict[str, float] = {}
    log: list[str] = []

    def note(msg: str) -> None:
        log.append(msg)
        say(msg)

    t0 = time.monotonic()
    with Stack(state_dir, services=PIPELINE, env=stack_env(), brokers=brokers) as stack:
        for name in PIPELINE:
            wait_ready(stack, name)
        timings["stack_up_s"] = time.monotonic() - t0
        driver = LoadDriver(stack.url("ingest"), rate_per_s=rate_per_s, seed=seed).start()
        try:
            driver.wait_accepted(between)
            for fault in faults:
                started = time.monotonic()
                apply(stack, fault, note)
                note(f"{fault}: {time.monotonic() - started:.1f}s, {driver.accepted_count()} captures accepted so far")
                driver.wait_accepted(between, timeout_s=90.0)
        finally:
            driver.stop()
        timings["load_s"] = time.monotonic() - t0 - timings["stack_up_s"]
        driver.accepted.dump(stack.state_dir / "accepted.jsonl")
        t1 = time.monotonic()
        report = final_audit(stack, driver, settle_s, note)
        timings["settle_s"] = time.monotonic() - t1
        note(f"load: {dict(driver.stats.actions)}, responses: {dict(driver.stats.statuses)}, "
             f"delivery: {dict(driver.stats.delivery)}")  # fmt: skip
        note(report.summary())
    timings["total_s"] = time.monotonic() - t0
    return Outcome(report, driver.stats, timings, log)
