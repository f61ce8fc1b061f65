"""Transient failures, and the one backoff loop that waits them out.

A transient failure is one that goes away by itself: Redis or the broker unreachable or slow.
Everything that must not give up on those (a handler, a publish, a rebuild, a state append)
goes through ``retry_transient``; anything else propagates at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    ConnectionError,
    TimeoutError,
)


async def retry_transient(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    base_s: float = 0.2,
    max_s: float = 5.0,
    on_retry: Callable[[BaseException], object] | None = None,
    extra: Mapping[str, Any] | None = None,
    transient: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """``await op()`` until it returns; a ``transient`` failure is logged (``what`` names the
    operation, ``extra`` the event), ``on_retry`` is told, and ``op`` runs again after a delay
    doubling from ``base_s`` up to ``max_s``. Any other exception propagates."""
    delay = base_s
    while True:
        try:
            return await op()
        except transient as exc:
            if on_retry is not None:
                on_retry(exc)
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc, extra=dict(extra or {}))
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_s)
