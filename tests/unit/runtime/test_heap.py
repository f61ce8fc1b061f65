"""A service's heap once it has started: what exists frozen, the young threshold raised
(``GC_YOUNG_THRESHOLD``), or CPython's defaults with ``0``; applied by every entry point."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError

from leadpipe.runtime import agents
from leadpipe.runtime.asgi import QuietServer
from leadpipe.runtime.heap import OLDER_EVERY, settle_heap, settle_once
from leadpipe.runtime.settings import ServiceSettings

DEFAULTS = (700, 10, 10)


@pytest.fixture
def gc_restored() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(*DEFAULTS)
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settling_freezes_what_exists_and_raises_the_young_threshold(gc_restored: None) -> None:
    assert gc.get_freeze_count() == 0
    built = [{"n": i} for i in range(1000)]  # long-lived containers, as a service's start-up makes
    settle_heap(12_345)
    assert gc.get_threshold() == (12_345, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_freeze_count() >= len(built)
    walked = {id(o) for o in gc.get_objects()}
    assert not any(id(x) in walked for x in built)  # frozen: collections no longer walk them


def test_zero_keeps_cpython_defaults_and_freezes_nothing(gc_restored: None) -> None:
    settle_heap(0)
    assert gc.get_threshold() == DEFAULTS
    assert gc.get_freeze_count() == 0


async def test_settling_once_waits_for_the_start_and_gives_up_waiting_after_a_while(gc_restored: None) -> None:
    started = asyncio.Event()
    waiting = asyncio.create_task(settle_once(started.is_set, 5000, poll_s=0.01))
    await asyncio.sleep(0.05)
    assert not waiting.done() and gc.get_threshold() == DEFAULTS
    started.set()
    await asyncio.wait_for(waiting, 1)
    assert gc.get_threshold() == (5000, OLDER_EVERY, OLDER_EVERY)

    gc.set_threshold(*DEFAULTS)  # never started: settled anyway after give_up_s
    await asyncio.wait_for(settle_once(lambda: False, 6000, poll_s=0.01, give_up_s=0.05), 1)
    assert gc.get_threshold() == (6000, OLDER_EVERY, OLDER_EVERY)


class FakeApp:
    """What ``run_worker`` and ``consumer_ready`` use of a Faust app."""

    def __init__(self) -> None:
        self.tasks: list[Any] = []
        self.rebalancing = False
        self.assigned: set[str] = set()
        self.consumer = self

    def assignment(self) -> set[str]:
        return self.assigned

    def task(self, fn: Any) -> Any:
        self.tasks.append(fn)
        return fn

    def main(self) -> None:
        pass


@pytest.mark.parametrize(("value", "threshold"), [(None, 10_000), ("2500", 2500), ("0", None)])
async def test_a_worker_settles_its_heap_once_it_has_joined_its_group(
    monkeypatch: pytest.MonkeyPatch, gc_restored: None, value: str | None, threshold: int | None
) -> None:
    if value is None:
        monkeypatch.delenv("GC_YOUNG_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("GC_YOUNG_THRESHOLD", value)
    monkeypatch.setattr(agents, "use_event_loop", lambda settings: None)
    app = FakeApp()
    settings = ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused")  # type: ignore[call-arg]
    agents.run_worker(app, settings)  # type: ignore[arg-type]
    (settle,) = app.tasks
    settling = asyncio.create_task(settle())
    await asyncio.sleep(0.3)
    if threshold is None:
        assert settling.done() and gc.get_threshold() == DEFAULTS and gc.get_freeze_count() == 0
        return
    assert not settling.done() and gc.get_threshold() == DEFAULTS  # no partitions yet
    app.assigned = {"lead.scored.v1:0"}
    await asyncio.wait_for(settling, 2)
    assert gc.get_threshold() == (threshold, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_freeze_count() > 0


async def test_an_http_server_settles_its_heap_once_listening(gc_restored: None) -> None:
    server = QuietServer(uvicorn.Config(app=None), young_threshold=4000)
    server.should_exit = True
    await server.main_loop()
    assert gc.get_threshold() == (4000, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_freeze_count() > 0


@pytest.mark.parametrize("service", ["ingest", "console"])
async def test_the_http_services_give_their_server_the_setting(monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    main = importlib.import_module(f"services.{service}.__main__")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:1/console")
    monkeypatch.setenv("GC_YOUNG_THRESHOLD", "3000")
    monkeypatch.setattr(main, "create_app", lambda *a: object())
    if service == "ingest":
        monkeypatch.setattr(main, "build_deps", lambda settings: None)
    given: list[int] = []

    class Server:
        def __init__(self, config: Any, *, young_threshold: int = 0):
            given.append(young_threshold)

        async def serve(self) -> None:
            pass

    monkeypatch.setattr(main, "QuietServer", Server)
    settings = importlib.import_module(f"services.{service}.config")
    await main.serve(getattr(settings, f"{service.capitalize()}Settings")())
    assert given == [3000]


@pytest.mark.parametrize("value", ["-1", "2000000", "lots"])
def test_a_young_threshold_out_of_range_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GC_YOUNG_THRESHOLD", value)
    with pytest.raises(ValidationError, match="gc_young_threshold"):
        ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused")  # type: ignore[call-arg]
