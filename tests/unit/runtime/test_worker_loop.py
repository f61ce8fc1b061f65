"""A worker's event loop: uvloop by default, asyncio's own with ``WORKER_UVLOOP=false``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from leadpipe.runtime.agents import use_event_loop
from leadpipe.runtime.settings import ServiceSettings


@pytest.fixture
def policy_restored() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


@pytest.mark.parametrize(("value", "loop_type"), [(None, uvloop.Loop), ("false", asyncio.BaseEventLoop)])
def test_the_loop_faust_creates_is_uvloop_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, policy_restored: None, value: str | None, loop_type: type
) -> None:
    if value is None:
        monkeypatch.delenv("WORKER_UVLOOP", raising=False)
    else:
        monkeypatch.setenv("WORKER_UVLOOP", value)
    use_event_loop(ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused"))  # type: ignore[call-arg]
    loop = asyncio.new_event_loop()  # what Faust's worker gets from the policy when it starts
    try:
        assert isinstance(loop, loop_type)
        assert isinstance(loop, uvloop.Loop) == (value is None)
    finally:
        loop.close()
