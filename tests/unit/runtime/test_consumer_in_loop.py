"""A Faust worker's Kafka consumer runs in the worker's own event loop (KAFKA_CONSUMER_IN_LOOP,
default on): no consumer thread, and calls Faust hands to "the thread" are plain awaits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

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
