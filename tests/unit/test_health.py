from __future__ import annotations

import asyncio

from leadpipe.runtime.health import redis_reachable


class _Redis:
    def __init__(self, behaviour: str):
        self.behaviour = behaviour

    async def ping(self) -> bool:
        if self.behaviour == "down":
            raise ConnectionError("connection refused")
        if self.behaviour == "hangs":
            await asyncio.sleep(10)
        return True


async def test_a_redis_that_answers_ping_is_reachable():
    assert await redis_reachable(_Redis("up")) is True


async def test_no_client_yet_is_not_ready():
    assert await redis_reachable(None) is False


async def test_a_refused_connection_is_not_ready():
    assert await redis_reachable(_Redis("down")) is False


async def test_a_hanging_redis_is_not_ready_after_the_timeout():
    assert await redis_reachable(_Redis("hangs"), timeout_s=0.05) is False
