"""Faust's livelock check, as our consumer runs it: every assigned partition verified, in one step
(Faust's own yields to the loop before each one: a task and a timer per partition every 2.5 s,
a third of an idle worker's loop wake-ups)."""

from __future__ import annotations

import asyncio

from faust.types import TP

from leadpipe.runtime.faust_app import _Consumer

TPS = [TP("lead.scored.v1", p) for p in range(6)] + [TP("nurture.park.v1", p) for p in range(6)]


class _Checked:
    """Only what the check reads: the assignment, the stop flag and the per-partition verify."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.verified: list[tuple[float, TP]] = []
        self.stop_after = stop_after

    def assignment(self) -> list[TP]:
        return TPS

    @property
    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.verified) >= self.stop_after

    def verify_event_path(self, now: float, tp: TP) -> None:
        self.verified.append((now, tp))

    async def restart_stalled_partitions(self, now: float) -> None:
        self.verified.append((now, TP("(delivery watch)", -1)))


async def _run(checked: _Checked) -> int:
    """Runs the check beside a task that counts how often the loop got control back meanwhile."""
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    spinner = asyncio.create_task(other())
    await asyncio.sleep(0)
    before = turns
    await _Consumer.verify_all_partitions_active(checked)  # type: ignore[arg-type]
    after = turns
    spinner.cancel()
    return after - before


async def test_every_assigned_partition_is_verified_with_one_clock_reading_and_no_loop_turns() -> None:
    checked = _Checked()
    turns = await _run(checked)
    assert [tp for _, tp in checked.verified] == [*TPS, TP("(delivery watch)", -1)]
    assert len({now for now, _ in checked.verified}) == 1
    assert turns == 0


async def test_a_stopping_consumer_stops_verifying() -> None:
    checked = _Checked(stop_after=3)
    await _run(checked)
    assert [tp for _, tp in checked.verified] == TPS[:3]
