"""The control for the fault tests: two replicas of every service under the chaos load with no
fault at all, and the chaos audit. When this fails, so will the fault tests after it, and not
because of their faults."""

from __future__ import annotations

import pytest

from tests.chaos.driver import LoadDriver
from tests.containers.conftest import ContainerStack
from tests.containers.faults import loaded

pytestmark = [pytest.mark.containers, pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(400)]


def test_two_replicas_of_each_service_under_load_without_faults_lose_nothing_and_send_nothing_twice(
    container_stack: ContainerStack,
):
    def no_fault(driver: LoadDriver) -> None:
        print(f"\nno fault at {driver.accepted_count()} accepted captures")

    verdict = loaded(container_stack, no_fault, seed=11, settle_s=180.0)
    assert verdict.report.ok, verdict.report.summary()
    assert verdict.accepted >= 30
