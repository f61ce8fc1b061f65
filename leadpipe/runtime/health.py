"""Readiness probes shared by the services' ``/readyz``."""

from __future__ import annotations

import asyncio
from typing import Any


async def redis_reachable(client: Any | None, timeout_s: float = 2.0) -> bool:
    """True when ``client`` (a redis.asyncio client) answers PING within ``timeout_s``."""
    if client is None:
        return False
    try:
        return bool(await asyncio.wait_for(client.ping(), timeout_s))
    except Exception:
        return False
