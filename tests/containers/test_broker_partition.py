"""A broker container cut off from the network under load (``podman network disconnect``), then
healed, and the chaos audit over everything ingest accepted: nothing lost, nothing sent twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.chaos.audit import OUTCOME, audit, dump, read_observed
from tests.chaos.driver import LoadDriver
from tests.containers.conftest import ContainerStack

pytestmark = [pytest.mark.containers, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(720)]

PARTITION_S = 20.0
# Measured here (2026-11-26): after the heal one notifier replica kept asking the healed broker for
# a partition's offsets ("NotLeaderForPartitionError" about 10 times a second) for 2 min 43 s
# before its sends went out, so the audit waits up to 5 minutes for the pipeline to settle.
SETTLE_S = 300.0


def test_a_broker_partitioned_from_the_others_under_load_loses_no_lead_and_sends_nothing_twice(
    container_stack: ContainerStack,
):
    stack = container_stack
    victim = stack.name("kafka-2")
    network = f"{stack.project}-net"
    address = stack.ip(victim)
    driver = LoadDriver(stack.url("ingest", 1, 8080), rate_per_s=6.0, seed=17).start()
    try:
        driver.wait_accepted(15, timeout_s=90)
        cut = time.monotonic()
        stack.podman("network", "disconnect", network, victim)
        print(f"\n{victim} disconnected at {driver.accepted_count()} accepted captures")
        time.sleep(PARTITION_S)
        # Back with its address and DNS alias, as it was.
        stack.podman("network", "connect", "--ip", address, "--alias", "kafka-2", network, victim)
        print(f"{victim} reconnected after {time.monotonic() - cut:.1f}s, {driver.accepted_count()} accepted")
        driver.wait_accepted(15, timeout_s=120)
    finally:
        driver.stop()
    stats = driver.stats
    print(f"load: {dict(stats.actions)}, responses: {dict(stats.statuses)}, delivery: {dict(stats.delivery)}")

    healed = time.monotonic()
    deadline = healed + SETTLE_S
    while True:
        seen = asyncio.run(read_observed(stack.bootstrap, stack.outbox))
        report = audit(driver.accepted, seen, now=datetime.now(UTC))
        final = {"double_send", "conflicting_outcomes", "dead_lettered", "undecodable"} & set(report.kinds())
        if report.ok or final or time.monotonic() > deadline:
            break
        time.sleep(3.0)
    if not report.ok:
        dump(driver.accepted, seen, stack.outbox.parent / "audit")
    outcomes = Counter(r.event.data.status for r in seen.topic(OUTCOME) if r.event is not None)
    print(f"notification outcomes: {dict(outcomes)}, outbox lines: {len(seen.sends)}")
    print(f"audit after the load stopped: {report.summary()} (settled in {time.monotonic() - healed:.1f}s)")
    assert report.ok, report.summary()
