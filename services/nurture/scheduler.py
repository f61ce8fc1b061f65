"""The scheduler every nurture replica runs: fires due touches and SLA timers, serves the
overflow queue, and looks after the gauges and the Redis keyspace.

It sleeps until the earliest due time in the schedule, but never longer than ``check_s``, and
is woken sooner by the handler's ``Wake`` when this replica saves an earlier due time or
releases capacity. So a touch fires when it is due (not on the next poll), and an idle nurture
wakes once per ``check_s`` instead of four times a second.

``check_s`` is also how soon it notices what nobody tells it: capacity released by another
replica or a rep's new day (the overflow queue), due times left by a replica that died, and a
Redis wiped while no event comes (the rebuild); and how often the gauges are refreshed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

from services.nurture.handlers import NurtureHandler

log = logging.getLogger(__name__)

#: After a failed round (Redis unreachable): the pause before the next one.
RETRY_S = 1.0


class Scheduler:
    def __init__(
        self,
        handler: NurtureHandler,
        ensure_built: Callable[[], Awaitable[None]],
        *,
        lease_s: float,
        batch: int,
        check_s: float,
    ):
        self.handler = handler
        self.ensure_built = ensure_built
        self.lease_s, self.batch, self.check_s = lease_s, batch, check_s
        self._next_check = -math.inf

    async def run(self) -> None:
        """Rounds until cancelled; a failed round is logged and retried after ``RETRY_S``."""
        while True:
            try:
                pause = await self.round()
            except Exception:
                log.exception("scheduler round failed; retrying")
                pause = RETRY_S
            await self.sleep(pause)

    async def round(self) -> float:
        """Fires what is due and, every ``check_s``, the housekeeping. Returns how long to sleep
        before the next round (0: more is due already)."""
        h, loop = self.handler, asyncio.get_running_loop()
        handled = await h.tick(self.lease_s, self.batch)
        check = loop.time() >= self._next_check
        if check:
            await self.ensure_built()
        if check or h.capacity_freed.is_set():
            await h.serve_queue()
        if check:
            await h.refresh_gauges()
            self._next_check = loop.time() + self.check_s  # a failed check is tried again next round
        if handled >= self.batch:
            return 0.0
        # From here every due time saved sooner rings the bell: one saved while the schedule is
        # read below is either in what it returns or rings after it.
        h.wake.at = math.inf
        h.wake.bell.clear()
        earliest = await h.store.next_due()
        if h.capacity_freed.is_set():  # released after serve_queue ran: serve it now
            return 0.0
        now = h.clock().timestamp()
        until_check = self._next_check - loop.time()
        pause = max(0.0, min(until_check, math.inf if earliest is None else earliest - now))
        h.wake.at = now + pause
        return pause

    async def sleep(self, pause: float) -> None:
        """Up to ``pause`` seconds, less when the handler's ``Wake`` rings."""
        if pause <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.handler.wake.bell.wait(), pause)
