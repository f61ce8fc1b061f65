"""Counts Redis round trips: a ``redis.asyncio`` connection class that counts every packed
write (one command, one pipeline or one script call each), for the benchmarks and the tests
that pin how many round trips a handler makes.

    counter = RoundTrips()
    redis = Redis.from_url(url, connection_class=counter.connection_class())
    ...
    counter.count   # round trips since the last counter.reset()
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio.connection import Connection


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def connection_class(self) -> type[Connection]:
        counter = self

        class CountingConnection(Connection):
            async def send_packed_command(
                self, command: bytes | str | Iterable[bytes], check_health: bool = True
            ) -> None:
                counter.count += 1
                await super().send_packed_command(command, check_health)

        return CountingConnection
