"""An idle canary wakes a few times per timeout, not twice a second (idle CPU, issue #13)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from leadpipe.canary import Canary, CanaryMetrics
from leadpipe.ops.settings import OpsSettings


class _Stop(Exception):
    pass


class _IdleConsumer:
    """Answers every poll with nothing; stops the watch loop after ``polls`` polls."""

    def __init__(self, polls: int) -> None:
        self.timeouts: list[int] = []
        self.polls = polls

    async def getmany(self, *, timeout_ms: int) -> dict[object, list[object]]:
        self.timeouts.append(timeout_ms)
        if len(self.timeouts) >= self.polls:
            raise _Stop
        return {}


def _canary(timeout_s: float) -> Canary:
    settings = OpsSettings(kafka_bootstrap_servers="unused:9092")
    return Canary(settings, CanaryMetrics(CollectorRegistry()), timeout_s=timeout_s)


@pytest.mark.parametrize(("timeout_s", "poll_ms"), [(120.0, 5000), (8.0, 2000), (1.0, 250), (0.0, 100)])
async def test_the_idle_canary_polls_a_few_times_per_timeout_at_most_every_5_s(timeout_s: float, poll_ms: int) -> None:
    consumer = _IdleConsumer(polls=3)
    with pytest.raises(_Stop):
        await _canary(timeout_s).watch(consumer)  # type: ignore[arg-type]
    assert consumer.timeouts == [poll_ms] * 3
