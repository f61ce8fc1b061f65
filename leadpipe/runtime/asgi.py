"""uvicorn's server with a quiet idle loop, for the HTTP services (ingest, the console).

uvicorn's ``Server.main_loop`` ticks ten times a second to refresh the ``Date`` header (once a
second) and to see whether it should exit: ten wake-ups a second of an idle process. Here it
ticks once a second (the header's own resolution), and a shutdown signal wakes it at once.
"""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn

from leadpipe.runtime.heap import settle_heap

#: uvicorn refreshes the Date header on every tenth of its 100 ms ticks (``counter % 10``).
_TICKS_PER_SECOND = 10


class QuietServer(uvicorn.Server):
    """``young_threshold``: once listening, the heap is settled (``runtime.heap``; 0: not)."""

    def __init__(self, config: uvicorn.Config, *, young_threshold: int = 0) -> None:
        super().__init__(config)
        self.young_threshold = young_threshold
        self._exit: asyncio.Event | None = None
        self._nap: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        settle_heap(self.young_threshold)  # started: everything serving needs is built
        loop = self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + _TICKS_PER_SECOND) % 864_000
            if not self._exit.is_set():
                # A future and a timer: one loop wake-up a second (``wait_for`` on the event made
                # a task and several callbacks of each tick).
                self._nap = loop.create_future()
                timer = loop.call_later(1.0, _wake, self._nap)
                try:
                    await self._nap
                finally:
                    timer.cancel()
                    self._nap = None
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._exit_now)

    def _exit_now(self) -> None:
        if self._exit is not None:
            self._exit.set()
        if self._nap is not None:
            _wake(self._nap)


def _wake(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)
