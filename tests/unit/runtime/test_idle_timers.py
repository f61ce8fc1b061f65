"""An idle Faust worker runs no commit tick and no monitor sampler: it commits at the commit
interval while records are acknowledged, and sleeps without a timer while none are."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.transport import consumer as faust_consumer

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.faust_compat import QuietMonitor, _Consumer
from leadpipe.runtime.settings import ServiceSettings


class _Committer:
    """What ``_Consumer._commit_handler`` uses: mode's sleep and wait, the ack event, commit."""

    commit_interval = 0.02
    _acked_since_commit: asyncio.Event | None = None
    _ack_event = _Consumer._ack_event

    def __init__(self, left_uncommitted: int = 0) -> None:
        self.commits = 0
        self.left_uncommitted = left_uncommitted  # commits that leave acked offsets behind
        self.stopped = asyncio.Event()

    def _uncommitted_acks(self) -> bool:
        return self.commits <= self.left_uncommitted

    @property
    def should_stop(self) -> bool:
        return self.stopped.is_set()

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(s)

    async def wait(self, event: asyncio.Event) -> None:
        stop = asyncio.ensure_future(self.stopped.wait())
        got = asyncio.ensure_future(event.wait())
        await asyncio.wait([stop, got], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        got.cancel()

    async def commit(self) -> None:
        self.commits += 1


async def test_the_commit_waits_for_an_acknowledgement_and_runs_at_the_commit_interval_after_one() -> None:
    worker = _Committer()
    task = asyncio.create_task(_Consumer._commit_handler.fun(worker))  # type: ignore[attr-defined]
    await asyncio.sleep(0.2)
    assert worker.commits == 0  # ten intervals, nothing acknowledged: nothing committed
    for _ in range(5):  # five acknowledgements within one interval: one commit
        worker._ack_event().set()
    await asyncio.sleep(0.1)
    assert worker.commits == 1
    worker._ack_event().set()
    await asyncio.sleep(0.1)
    assert worker.commits == 2
    worker.stopped.set()
    await asyncio.wait_for(task, 1)


async def test_a_commit_that_left_acknowledged_offsets_behind_runs_again_without_a_new_ack() -> None:
    # (another commit was under way, and Faust returned without committing this one's offsets)
    worker = _Committer(left_uncommitted=1)
    task = asyncio.create_task(_Consumer._commit_handler.fun(worker))  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    worker._ack_event().set()
    await asyncio.sleep(0.15)
    assert worker.commits == 2  # the second one committed them; then nothing is left to do
    await asyncio.sleep(0.1)
    assert worker.commits == 2
    worker.stopped.set()
    await asyncio.wait_for(task, 1)


def test_an_acknowledged_message_wakes_the_commit_and_a_repeated_one_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    results = [False, True]
    monkeypatch.setattr(faust_consumer.Consumer, "ack", lambda self, message: results.pop(0))
    consumer = object.__new__(_Consumer)  # only its ack path: no app, no service
    assert consumer.ack(object()) is False  # already acknowledged: nothing new to commit
    assert not consumer._ack_event().is_set()
    assert consumer.ack(object()) is True
    assert consumer._ack_event().is_set()


async def test_the_workers_monitor_has_no_sampler(tmp_path: Path) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused",
                               leadpipe_state_dir=tmp_path)  # fmt: skip
    app = make_app("monitor-test", settings)
    assert type(app.monitor) is QuietMonitor
    await asyncio.wait_for(QuietMonitor._sampler.fun(app.monitor), 0.1)  # type: ignore[attr-defined]


def test_uncommitted_acks_are_read_from_the_commit_rule_and_a_stopping_consumer_has_none() -> None:
    consumer = object.__new__(_Consumer)
    consumer.assignment = lambda: {"p0", "p1"}  # type: ignore[method-assign]
    consumer._new_offset = lambda tp: 7 if tp == "p1" else None  # type: ignore[method-assign,assignment]
    assert consumer._uncommitted_acks() is True
    consumer._new_offset = lambda tp: None  # type: ignore[method-assign,assignment]
    assert consumer._uncommitted_acks() is False

    def stopped() -> set[str]:
        raise RuntimeError("Consumer thread not yet started")

    consumer.assignment = stopped  # type: ignore[method-assign]
    assert consumer._uncommitted_acks() is False
