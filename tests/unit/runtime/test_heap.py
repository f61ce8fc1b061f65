"""A service's heap once it is built: start-up objects frozen, the young threshold raised
(``GC_YOUNG_THRESHOLD``), or CPython's defaults with ``0``; applied by every entry point."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from leadpipe.runtime import agents
from leadpipe.runtime.heap import OLDER_EVERY, settle_heap
from leadpipe.runtime.settings import ServiceSettings


@pytest.fixture
def gc_restored() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
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
    gc.set_threshold(700, 10, 10)
    settle_heap(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(("value", "threshold"), [(None, 10_000), ("2500", 2500), ("0", 700)])
def test_a_worker_settles_its_heap_before_faust_starts(
    monkeypatch: pytest.MonkeyPatch, gc_restored: None, value: str | None, threshold: int
) -> None:
    gc.set_threshold(700, 10, 10)
    if value is None:
        monkeypatch.delenv("GC_YOUNG_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("GC_YOUNG_THRESHOLD", value)
    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(agents, "use_event_loop", lambda settings: None)

    class App:
        def main(self) -> None:
            seen.append(gc.get_threshold())

    settings = ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused")  # type: ignore[call-arg]
    agents.run_worker(App(), settings)  # type: ignore[arg-type]
    assert seen == [(threshold, 10, 10)]
    assert (gc.get_freeze_count() > 0) == (threshold != 700)


@pytest.mark.parametrize("service", ["ingest", "console"])
def test_the_http_services_settle_their_heap_before_serving(
    monkeypatch: pytest.MonkeyPatch, gc_restored: None, service: str
) -> None:
    main = importlib.import_module(f"services.{service}.__main__")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:1/console")
    monkeypatch.delenv("GC_YOUNG_THRESHOLD", raising=False)
    monkeypatch.setattr(main, "install_from_env", lambda name: None)
    monkeypatch.setattr(main, "setup_logging", lambda *a, **kw: None)
    seen: list[tuple[int, int, int]] = []

    def serve(coro: Any, *args: Any) -> None:
        coro.close()
        seen.append(gc.get_threshold())

    if service == "ingest":
        monkeypatch.setattr(main, "run", serve)
    else:  # the console calls asyncio.run
        monkeypatch.setattr(main, "asyncio", SimpleNamespace(run=serve))
    main.main()
    assert seen == [(10_000, 10, 10)]
    assert gc.get_freeze_count() > 0
