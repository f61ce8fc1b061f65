"""A worker container cut off from Redis (and only from Redis: Kafka stays reachable) under load,
then healed, and the chaos audit over everything ingest accepted: nothing lost, nothing sent twice.

The notifier is the one cut off: its send ledger and claims live in Redis, so a notifier that
sends without them could send twice."""

from __future__ import annotations

import time

import pytest

from tests.chaos.driver import LoadDriver
from tests.containers.conftest import ContainerStack, wait_container_ready
from tests.containers.faults import cut_off, loaded

pytestmark = [pytest.mark.containers, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(600)]

PARTITION_S = 20.0


def test_a_notifier_partitioned_from_redis_under_load_loses_no_lead_and_sends_nothing_twice(
    container_stack: ContainerStack,
):
    stack = container_stack
    victim = stack.name("notifier", 1)

    def partition(driver: LoadDriver) -> None:
        cut = time.monotonic()
        with cut_off(stack, victim, stack.name("redis")):
            print(f"\n{victim} cut off from redis at {driver.accepted_count()} accepted captures")
            time.sleep(PARTITION_S)
        print(f"{victim} reaches redis again after {time.monotonic() - cut:.1f}s, {driver.accepted_count()} accepted")
        wait_container_ready(stack, "notifier", 1, 9103)

    verdict = loaded(stack, partition, seed=23, settle_s=240.0)
    assert verdict.report.ok, verdict.report.summary()
    assert verdict.report.stats["notifications_sent"] > 0
