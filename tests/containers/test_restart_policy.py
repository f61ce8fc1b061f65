"""A worker container's main process killed with SIGKILL under load, started again by its compose
restart policy (``restart: unless-stopped``; podman's conmon restarts it, no systemd needed), and
the chaos audit over everything ingest accepted: nothing lost, nothing scored twice as current,
nothing sent twice."""

from __future__ import annotations

import pytest

from tests.chaos.driver import LoadDriver
from tests.containers.conftest import ContainerStack, wait_container_ready
from tests.containers.faults import kill9_main, loaded, restarts

pytestmark = [pytest.mark.containers, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_scoring_container_killed_with_sigkill_is_restarted_by_its_policy_and_loses_no_lead(
    container_stack: ContainerStack,
):
    stack = container_stack
    victim = stack.name("scoring", 1)
    before = restarts(stack, victim)

    def crash(driver: LoadDriver) -> None:
        print(f"\nkill -9 {victim}'s main process at {driver.accepted_count()} accepted captures")
        back = kill9_main(stack, victim)
        print(f"{victim} running again {back:.1f}s later (restart policy)")
        wait_container_ready(stack, "scoring", 1, 9101)

    verdict = loaded(stack, crash, seed=29, settle_s=240.0)
    assert restarts(stack, victim) == before + 1
    assert verdict.report.ok, verdict.report.summary()
    assert verdict.accepted >= 30
