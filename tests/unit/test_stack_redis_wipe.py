"""``Stack.restart_redis(wipe=True)`` empties the services' database once Redis has read its
append-only file: it waits while Redis answers LOADING, and gives up past its timeout with that
error. (Across a real redis-server: ``tests/integration/test_devstack_redis_restart.py``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

import leadpipe.devstack.stack as stack_module
from leadpipe.devstack.stack import Stack


class Loading:
    """A Redis client whose server is still loading its file for the first ``busy`` commands."""

    def __init__(self, busy: int):
        self.busy, self.flushed, self.closed = busy, 0, False

    def flushdb(self) -> None:
        if self.busy:
            self.busy -= 1
            raise redis.BusyLoadingError("LOADING Redis is loading the dataset in memory")
        self.flushed += 1

    def close(self) -> None:
        self.closed = True


class Process:
    def __init__(self) -> None:
        self.killed = False

    def kill9(self) -> None:
        self.killed = True


def _stack(tmp_path: Path, client: Loading, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setattr(redis.Redis, "from_url", staticmethod(lambda url: client))
    monkeypatch.setattr(stack_module, "start_redis", lambda *a, **kw: Process())
    s = Stack(tmp_path / "s")
    s.redis, s.redis_url = Process(), "redis://127.0.0.1:1/0"  # type: ignore[assignment]
    return s


def test_a_wipe_waits_while_redis_loads_its_file_then_empties_the_services_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Loading(busy=3)
    s = _stack(tmp_path, client, monkeypatch)
    crashed = s.redis
    s.restart_redis(wipe=True, timeout_s=5.0)
    assert crashed.killed and s.redis is not crashed  # type: ignore[attr-defined]
    assert client.flushed == 1 and client.busy == 0 and client.closed


def test_a_redis_still_loading_past_the_timeout_fails_the_wipe_with_that_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Loading(busy=1_000_000)
    with pytest.raises(redis.BusyLoadingError):
        _stack(tmp_path, client, monkeypatch).restart_redis(wipe=True, timeout_s=0.1)
    assert client.flushed == 0 and client.closed


def test_a_restart_that_keeps_the_data_flushes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client: Any = Loading(busy=0)
    _stack(tmp_path, client, monkeypatch).restart_redis()
    assert client.flushed == 0
