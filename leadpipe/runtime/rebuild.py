"""The rebuild-marker guard: Redis is an index of Kafka topics, rebuilt when its marker is gone.

Every consumer keeps its Redis keyspace rebuildable from topics; the keyspace carries a *built*
marker. ``RebuildGuard.ensure_built`` (at start, and whenever a read finds the marker gone:
Redis wiped under the worker) rebuilds before anything is decided. Concurrent callers wait for
one rebuild; a wipe during a rebuild makes it run again; Redis or the broker being away is
waited out (``retry_transient``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from leadpipe.runtime.retry import retry_transient

log = logging.getLogger(__name__)


class RebuildGuard:
    """``is_built`` reads the marker; ``rebuild`` restores the keyspace and sets the marker,
    returning whether it did (False: a wipe during the rebuild took it, or another replica is
    rebuilding; the marker is checked again after a short pause);
    ``on_rebuilt`` counts a finished rebuild (a metric)."""

    def __init__(
        self,
        *,
        service: str,
        source: str,
        is_built: Callable[[], Awaitable[bool]],
        rebuild: Callable[[], Awaitable[bool]],
        on_rebuilt: Callable[[], object] = lambda: None,
        retry_base_s: float = 0.5,
        retry_max_s: float = 5.0,
    ):
        self.service, self.source = service, source
        self.is_built, self.rebuild, self.on_rebuilt = is_built, rebuild, on_rebuilt
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self._lock = asyncio.Lock()

    async def ensure_built(self) -> None:
        async with self._lock:
            await retry_transient(
                self._until_built, what=f"{self.service} rebuild", base_s=self.retry_base_s, max_s=self.retry_max_s
            )

    async def _until_built(self) -> None:
        while not await self.is_built():
            log.warning("%s state is missing from Redis; rebuilding it from %s", self.service, self.source)
            if await self.rebuild():
                self.on_rebuilt()
            else:  # wiped again mid-rebuild, or another replica holds the rebuild: look again soon
                await asyncio.sleep(self.retry_base_s)
