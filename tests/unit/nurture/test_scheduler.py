"""The nurture scheduler sleeps until the next due time (at most its check interval), is woken
by a sooner due time this worker saves, and outlives a failed round (fakes, no Redis)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.nurture import scheduler
from services.nurture.scheduler import Scheduler
from tests.unit.nurture.builders import MONDAY_10_NY, scored
from tests.unit.nurture.test_nurture_handler import Nurture, raw

DAY_S = 86400.0


async def _built() -> None: ...


def _scheduler(n: Nurture, check_s: float) -> Scheduler:
    return Scheduler(n.handler, _built, lease_s=30.0, batch=10, check_s=check_s)


async def test_with_nothing_due_it_sleeps_the_whole_check_interval():
    n = Nurture()
    assert await _scheduler(n, check_s=5.0).round() == pytest.approx(5.0, abs=0.5)


async def test_it_sleeps_until_the_earliest_due_time():
    n = Nurture()
    n.store.due |= {"ld_later": MONDAY_10_NY.timestamp() + 3.0, "ld_much_later": MONDAY_10_NY.timestamp() + 60}
    assert await _scheduler(n, check_s=5.0).round() == pytest.approx(3.0)


async def test_a_sooner_due_time_saved_while_it_sleeps_wakes_it_and_what_is_due_now_fires_at_once():
    n = Nurture()
    s = _scheduler(n, check_s=30 * DAY_S)
    pause = await s.round()
    assert pause == pytest.approx(30 * DAY_S, abs=1)
    sleeping = asyncio.create_task(s.sleep(pause))
    await asyncio.sleep(0.05)
    assert not sleeping.done()
    await n.batches.process([raw(scored("ld_1", grade="B"), "ev-1")])  # schedules its next touch
    await asyncio.wait_for(sleeping, 2.0)
    assert await s.round() == pytest.approx(n.store.due["ld_1"] - MONDAY_10_NY.timestamp())
    later = n.store.due["ld_1"] + 1.0  # the touch is due: fired in this round, the next one scheduled
    n.handler.clock = lambda: datetime.fromtimestamp(later, UTC)
    published = len(n.publisher.events)
    pause = await s.round()
    assert len(n.publisher.events) > published
    assert pause == pytest.approx(min(n.store.due["ld_1"] - later, 30 * DAY_S), abs=1)


async def test_a_failed_round_is_logged_and_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(scheduler, "RETRY_S", 0.01)
    n = Nurture()
    calls = 0
    claim = n.store.claim_due

    async def failing_once(now: float, lease_s: float, limit: int) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis away")
        return await claim(now, lease_s, limit)

    n.store.claim_due = failing_once  # type: ignore[method-assign]
    running = asyncio.create_task(_scheduler(n, check_s=5.0).run())
    try:
        for _ in range(200):
            if calls >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        running.cancel()
    assert calls >= 2
    assert "scheduler round failed" in caplog.text


async def test_a_failed_housekeeping_is_tried_again_in_the_next_round_not_a_check_interval_later():
    n = Nurture()
    checks = 0

    async def unreachable() -> None:
        nonlocal checks
        checks += 1
        if checks == 1:
            raise ConnectionError("redis away")

    s = Scheduler(n.handler, unreachable, lease_s=30.0, batch=10, check_s=3600.0)
    with pytest.raises(ConnectionError):
        await s.round()
    await s.round()
    assert checks == 2
    await s.round()
    assert checks == 2  # done: the next one is a check interval away
