"""The one backoff loop and the one rebuild-marker guard."""

from __future__ import annotations

import asyncio

import pytest

from leadpipe.runtime.rebuild import RebuildGuard
from leadpipe.runtime.retry import retry_transient


async def test_a_transient_failure_is_retried_until_the_operation_succeeds():
    calls: list[int] = []
    seen: list[str] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("redis away")
        return "done"

    assert await retry_transient(flaky, what="t", base_s=0.001, on_retry=lambda e: seen.append(str(e))) == "done"
    assert len(calls) == 3 and seen == ["redis away", "redis away"]


async def test_any_other_failure_propagates_at_once():
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retry_transient(broken, what="t", base_s=0.001)
    assert calls == [1]


class Keyspace:
    def __init__(self, wipes_during_rebuild: int = 0, away: int = 0):
        self.built = False
        self.rebuilds = 0
        self.counted = 0
        self.wipes, self.away = wipes_during_rebuild, away

    async def is_built(self) -> bool:
        if self.away:
            self.away -= 1
            raise ConnectionError("redis away")
        return self.built

    async def rebuild(self) -> bool:
        self.rebuilds += 1
        await asyncio.sleep(0.01)
        if self.wipes:
            self.wipes -= 1
            return False  # wiped again while it ran: the marker was not set
        self.built = True
        return True

    def guard(self) -> RebuildGuard:
        def counted() -> None:
            self.counted += 1

        return RebuildGuard(service="t", source="t.state", is_built=self.is_built, rebuild=self.rebuild,
                            on_rebuilt=counted, retry_base_s=0.001)  # fmt: skip


async def test_concurrent_callers_wait_for_one_rebuild():
    ks = Keyspace()
    guard = ks.guard()
    await asyncio.gather(*(guard.ensure_built() for _ in range(5)))
    assert ks.built and ks.rebuilds == 1 and ks.counted == 1


async def test_a_wipe_during_the_rebuild_makes_it_run_again_and_redis_away_is_waited_out():
    ks = Keyspace(wipes_during_rebuild=1, away=2)
    await ks.guard().ensure_built()
    assert ks.built and ks.rebuilds == 2 and ks.counted == 1


async def test_a_built_keyspace_is_not_rebuilt():
    ks = Keyspace()
    ks.built = True
    await ks.guard().ensure_built()
    assert ks.rebuilds == 0
