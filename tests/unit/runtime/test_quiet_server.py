"""The HTTP services' uvicorn server ticks once a second while idle, still dates its answers,
and a shutdown signal stops it at once (not at its next tick)."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import uvicorn

from leadpipe.devstack.processes import free_port
from leadpipe.runtime.asgi import QuietServer


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_an_idle_server_ticks_once_a_second_serves_dated_answers_and_stops_at_a_signal() -> None:
    port = free_port()
    server = QuietServer(uvicorn.Config(_hello, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    ticks = 0
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        nonlocal ticks
        ticks += 1
        return await on_tick(counter)

    server.on_tick = counted  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(100):
            if server.started:
                break
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/")
        assert answer.text == "hello" and "date" in answer.headers
        ticks = 0
        await asyncio.sleep(2.0)
        assert ticks <= 3  # uvicorn's own loop: about 20
        asked = time.monotonic()
        server.handle_exit(signal.SIGTERM, None)
        server._captured_signals.clear()  # uvicorn re-raises a signal it caught once stopped
        await asyncio.wait_for(serving, 5.0)
        assert time.monotonic() - asked < 0.9
    finally:
        if not serving.done():
            server.should_exit = True
            await serving
