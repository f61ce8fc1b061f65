"""The delivery watch: which partitions a worker restarts, and which it must leave alone."""

from __future__ import annotations

import pytest
from faust.types import TP as FaustTP

from leadpipe.runtime.delivery import DeliveryWatch, PartitionView

TP = FaustTP("lead.captured.v1", 4)


def view(**kw: object) -> PartitionView:
    base: dict[str, object] = {"tp": TP, "position": 65, "highwater": 65, "delivered": 65, "buffered": False,
                               "busy": False, "held": False}  # fmt: skip
    return PartitionView(**(base | kw))  # type: ignore[arg-type]


def stuck_after(watch: DeliveryWatch, views: list[PartitionView], step: float = 10.0) -> list[float]:
    """The times (one check per ``step`` s) at which the watch named the partition."""
    return [i * step for i, v in enumerate(views) if watch.stalled(i * step, [v])]


@pytest.mark.parametrize(
    "stuck",
    [
        # fetched by the client and never handed to the streams
        view(position=65, delivered=64),
        # fetched, and held by the client: the partition is no longer asked for
        view(position=64, delivered=64, buffered=True),
        # in the log and never fetched (nothing delivered yet since the assignment)
        view(position=64, highwater=65, delivered=None),
    ],
    ids=["returned-not-handed-out", "held-by-the-client", "never-fetched"],
)
def test_a_partition_with_records_waiting_and_nothing_processing_is_named_after_stall_s(stuck: PartitionView) -> None:
    watch = DeliveryWatch(stall_s=30)
    assert stuck_after(watch, [stuck] * 8) == [30.0, 60.0]
    assert stuck.next_offset == 64  # where the restart seeks it


def test_a_caught_up_partition_is_never_named() -> None:
    watch = DeliveryWatch(stall_s=30)
    assert stuck_after(watch, [view()] * 10) == []


@pytest.mark.parametrize(
    "legit",
    [
        view(position=70, highwater=90, delivered=70, busy=True),  # queued or being processed
        view(position=64, highwater=90, delivered=64, held=True),  # paused for a rebalance
    ],
    ids=["busy", "held"],
)
def test_a_busy_or_held_partition_is_left_alone_however_long_it_waits(legit: PartitionView) -> None:
    watch = DeliveryWatch(stall_s=30)
    assert stuck_after(watch, [legit] * 20) == []


def test_progress_restarts_the_clock() -> None:
    watch = DeliveryWatch(stall_s=30)
    moving = [view(position=60 + i, highwater=100, delivered=60 + i) for i in range(8)]
    assert stuck_after(watch, moving) == []
    # ...and a wait that is interrupted by work (busy) starts again from zero afterwards.
    waits = (
        [view(position=64, highwater=65, delivered=64)] * 2
        + [view(busy=True)]
        + [view(position=64, highwater=65, delivered=64)] * 4
    )
    assert stuck_after(DeliveryWatch(stall_s=30), waits) == [60.0]


def test_a_revoked_partition_is_forgotten() -> None:
    watch = DeliveryWatch(stall_s=30)
    waiting = view(position=64, highwater=65, delivered=64)
    watch.stalled(0, [waiting])
    watch.stalled(20, [])  # revoked
    assert watch.stalled(30, [waiting]) == []  # assigned again: its clock starts now
    assert watch.stalled(60, [waiting]) == [waiting]


def test_stall_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall_s"):
        DeliveryWatch(stall_s=0)


# -- the worker's side: what it does with a stalled partition (leadpipe.runtime.faust_compat) ----


class _Worker:
    """Only what ``_Consumer.restart_stalled_partitions`` touches."""

    def __init__(self, views: object, seek_fails: bool = False) -> None:
        from types import SimpleNamespace

        self._views = views
        self.seek_fails = seek_fails
        self.counted: list[tuple[str, int]] = []
        self.sought: list[dict[object, int]] = []
        self._delivery_watch: DeliveryWatch | None = None
        self._buffered_partitions = {TP}
        self.active: set[object] = set()
        self.woken = 0
        self.app = SimpleNamespace(delivery_stall_s=30.0,
                                   delivery_restarts=lambda topic, p: self.counted.append((topic, p)))  # fmt: skip

    def partition_views(self) -> list[PartitionView]:
        if isinstance(self._views, Exception):
            raise self._views
        return self._views  # type: ignore[return-value]

    def _get_active_partitions(self) -> set[object]:
        return self.active

    def _wake_record_wait(self) -> None:
        self.woken += 1

    async def seek_wait(self, offsets: dict[object, int]) -> None:
        if self.seek_fails:
            raise TimeoutError("seek timed out")
        self.sought.append(offsets)


async def _check(worker: _Worker, now: float) -> None:
    from leadpipe.runtime.faust_compat import _Consumer

    await _Consumer.restart_stalled_partitions(worker, now)  # type: ignore[arg-type]


async def test_the_worker_puts_a_stalled_partition_back_into_its_fetches_and_seeks_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = _Worker([view(position=65, delivered=64)])
    await _check(worker, 0)
    assert worker.sought == [] and worker.counted == []  # not stalled for 30 s yet
    await _check(worker, 30)
    assert worker.sought == [{TP: 64}]
    assert worker.counted == [TP]
    assert worker.active == {TP} and worker._buffered_partitions == set()
    assert worker.woken == 1  # the streams' wait for records sees the partition at once
    assert "lead.captured.v1 partition 4 stopped delivering" in caplog.text


async def test_a_failing_seek_is_logged_and_tried_again_at_the_next_stall(caplog: pytest.LogCaptureFixture) -> None:
    worker = _Worker([view(position=65, delivered=64)], seek_fails=True)
    await _check(worker, 0)
    await _check(worker, 30)
    assert "seek to 64 failed" in caplog.text
    worker.seek_fails = False
    await _check(worker, 60)
    assert worker.sought == [{TP: 64}]


async def test_a_failing_watch_is_logged_and_never_stops_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    worker = _Worker(KeyError("no such partition"))
    await _check(worker, 0)
    assert "the delivery watch failed" in caplog.text


def test_a_stall_limit_out_of_range_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from leadpipe.runtime.settings import ServiceSettings

    monkeypatch.setenv("KAFKA_DELIVERY_STALL_S", "0")
    with pytest.raises(ValidationError, match="kafka_delivery_stall_s"):
        ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused")  # type: ignore[call-arg]
