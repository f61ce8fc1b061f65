"""A Faust worker's Kafka consumer runs in the worker's own event loop (KAFKA_CONSUMER_IN_LOOP,
default on): no consumer thread, and calls Faust hands to "the thread" are plain awaits."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from types import SimpleNamespace

from faust.types import TP

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.faust_compat import _ConsumerThread, _InLoopConsumerThread
from leadpipe.runtime.settings import ServiceSettings


def _settings(tmp_path: Path, **extra: object) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused", leadpipe_state_dir=tmp_path, **extra
    )


async def test_the_worker_consumer_runs_in_the_workers_own_loop_by_default(tmp_path: Path) -> None:
    app = make_app("in-loop-test", _settings(tmp_path))
    thread = app.consumer._thread
    assert type(thread) is _InLoopConsumerThread
    assert thread.thread_loop is asyncio.get_running_loop()


async def test_faust_s_consumer_thread_remains_a_setting_away(tmp_path: Path) -> None:
    app = make_app("thread-test", _settings(tmp_path, kafka_consumer_in_loop=False))
    thread = app.consumer._thread
    assert type(thread) is _ConsumerThread
    assert thread.thread_loop is not asyncio.get_running_loop()
    thread.thread_loop.close()


async def test_calls_for_the_thread_run_in_the_callers_loop_and_thread_whether_sync_or_async(tmp_path: Path) -> None:
    thread = make_app("calls-test", _settings(tmp_path)).consumer._thread
    seen: list[tuple[str, object, object]] = []

    def plain(x: int) -> int:
        seen.append(("plain", threading.current_thread(), None))
        return x + 1

    async def coro(x: int) -> int:
        seen.append(("coro", threading.current_thread(), asyncio.get_running_loop()))
        return x * 2

    assert await thread.call_thread(plain, 1) == 2
    assert await thread.call_thread(coro, 3) == 6
    await thread.cast_thread(coro, 5)
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    assert seen == [
        ("plain", threading.current_thread(), None),
        ("coro", threading.current_thread(), loop),
        ("coro", threading.current_thread(), loop),
    ]


async def test_an_app_with_a_changelog_table_keeps_fausts_consumer_thread(tmp_path: Path) -> None:
    app = make_app("table-test", _settings(tmp_path))
    app.Table("counts", default=int, partitions=1)
    thread = app.consumer._thread
    assert type(thread) is _ConsumerThread
    thread.thread_loop.close()


class _Fetcher:
    """The part of aiokafka's fetcher the streams' wait uses: the futures its waits are on."""

    def __init__(self) -> None:
        self._fetch_waiters: set[asyncio.Future[None]] = set()

    def waiter(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetch_waiters.add(fut)
        return fut


def _with_fetcher(app: object) -> tuple[object, _Fetcher]:
    consumer = app.consumer  # type: ignore[attr-defined]
    fetcher = _Fetcher()
    consumer._thread._consumer = SimpleNamespace(_fetcher=fetcher)
    return consumer, fetcher


async def test_a_partition_becoming_active_again_ends_the_streams_wait_for_records(tmp_path: Path) -> None:
    consumer, fetcher = _with_fetcher(make_app("wake-test", _settings(tmp_path)))
    tp = TP("t", 1)
    consumer._set_active_tps({tp, TP("t", 0)})

    waiting = fetcher.waiter()
    consumer.pause_partitions({tp})
    assert not waiting.done(), "pausing a partition has nothing new to deliver"
    consumer.resume_partitions({tp})
    assert waiting.done(), "a resumed partition's held records must end the wait"

    waiting = fetcher.waiter()
    consumer.on_buffer_drop(tp)  # it was not held back: nothing changes
    assert not waiting.done()
    consumer.on_buffer_full(tp)
    consumer.on_buffer_drop(tp)
    assert waiting.done(), "a partition taken back after back-pressure must end the wait"

    waiting = fetcher.waiter()
    consumer._set_active_tps({tp})  # a new assignment
    assert waiting.done()


async def test_the_streams_wait_for_records_as_long_as_the_fetchs_long_poll(tmp_path: Path) -> None:
    app = make_app("wait-test", _settings(tmp_path, kafka_fetch_idle_wait_ms=7000))
    consumer, _ = _with_fetcher(app)
    asked: list[float] = []

    async def wait_next_records(timeout: float) -> tuple[None, None]:
        asked.append(timeout)
        return None, None

    consumer._wait_next_records = wait_next_records
    async for _ in consumer.getmany(timeout=1.0):  # Faust's drain loop's fixed 1 s
        pass
    assert asked == [7.0]


async def test_faust_s_consumer_thread_keeps_its_one_second_wait_and_has_nothing_to_wake(tmp_path: Path) -> None:
    app = make_app("thread-wait-test", _settings(tmp_path, kafka_consumer_in_loop=False))
    consumer = app.consumer
    asked: list[float] = []

    async def wait_next_records(timeout: float) -> tuple[None, None]:
        asked.append(timeout)
        return None, None

    consumer._wait_next_records = wait_next_records
    async for _ in consumer.getmany(timeout=1.0):
        pass
    assert asked == [1.0]
    assert consumer._in_loop_fetcher() is None
    consumer.resume_partitions({TP("t", 0)})  # and waking is a no-op there, not an error
    consumer._thread.thread_loop.close()


async def test_an_emptied_partition_set_asks_the_client_for_none_not_for_every_partition(tmp_path: Path) -> None:
    thread = make_app("view-test", _settings(tmp_path)).consumer._thread
    asked: list[object] = []

    class Fetcher:
        _closed = False
        _subscriptions = SimpleNamespace(fetch_context=contextlib.nullcontext)

        async def fetched_records(self, partitions: object, timeout: float, max_records: int) -> dict[object, object]:
            asked.append(partitions)
            return {}

    active: set[TP] = set()
    await thread._fetch_records(SimpleNamespace(_closed=False, _fetcher=Fetcher()), active, timeout=0, max_records=1)
    partitions = asked[0]
    assert partitions, "aiokafka reads an empty (falsy) set as every partition"
    tp = TP("t", 0)
    assert tp not in partitions  # type: ignore[operator]
    active.add(tp)  # Faust changes its set in place while the wait runs: the wait must see it
    assert tp in partitions  # type: ignore[operator]

    await thread._fetch_records(SimpleNamespace(_closed=False, _fetcher=Fetcher()), None, timeout=0, max_records=1)
    assert asked[1] is None  # a client-only app asks for every partition, as before
