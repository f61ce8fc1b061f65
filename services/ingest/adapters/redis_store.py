"""Ingest's Redis state (keys prefixed ``ingest:``): rate limits, idempotency keys, scan
dedupe, webhook replay guard and first-answer-wins for assignment links. All of it may be
lost without losing a lead (it only guards against abuse and repeats)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

from leadpipe.runtime.health import redis_reachable

P = "ingest:"


class RedisStore:
    def __init__(self, redis: Redis[bytes]):
        self.redis = redis

    async def ping(self) -> bool:
        return await redis_reachable(self.redis)

    async def hit(self, scope: str, ident: str, limit: int, window_s: int = 60) -> bool:
        """Count a hit in a fixed window; False when over ``limit``."""
        bucket = int(time.time() // window_s)
        key = f"{P}rl:{scope}:{ident}:{bucket}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window_s * 2)
        count, _ = await pipe.execute()
        return int(count) <= limit

    async def claim_scans(self, show_id: str, scan_ids: list[str], ttl_s: int) -> list[bool]:
        """True for each scan id seen for the first time at this show."""
        pipe = self.redis.pipeline(transaction=False)
        for sid in scan_ids:
            pipe.set(f"{P}scan:{show_id}:{sid}", b"1", nx=True, ex=ttl_s)
        return [bool(r) for r in await pipe.execute()]

    async def release_scans(self, show_id: str, scan_ids: list[str]) -> None:
        if scan_ids:
            await self.redis.delete(*[f"{P}scan:{show_id}:{sid}" for sid in scan_ids])

    async def begin_idempotent(self, scope: str, key: str, fingerprint: str, ttl_s: int) -> dict[str, Any] | None:
        """None if this key is new (now marked in progress); else the stored entry."""
        rkey = f"{P}idem:{scope}:{key}"
        entry = orjson.dumps({"fingerprint": fingerprint, "state": "in_progress"})
        if await self.redis.set(rkey, entry, nx=True, ex=ttl_s):
            return None
        raw = await self.redis.get(rkey)
        if raw is None:
            return await self.begin_idempotent(scope, key, fingerprint, ttl_s)
        stored: dict[str, Any] = orjson.loads(raw)
        return stored

    async def finish_idempotent(
        self, scope: str, key: str, fingerprint: str, status: int, body: Any, ttl_s: int
    ) -> None:
        entry = {"fingerprint": fingerprint, "state": "done", "status": status, "body": body}
        await self.redis.set(f"{P}idem:{scope}:{key}", orjson.dumps(entry), ex=ttl_s)

    async def abandon_idempotent(self, scope: str, key: str) -> None:
        await self.redis.delete(f"{P}idem:{scope}:{key}")

    async def first_use(self, kind: str, ident: str, ttl_s: int, value: str = "1") -> str | None:
        """None on first use (recorded now); else the value stored by the first use."""
        rkey = f"{P}{kind}:{ident}"
        if await self.redis.set(rkey, value.encode(), nx=True, ex=ttl_s):
            return None
        raw = await self.redis.get(rkey)
        return raw.decode() if raw is not None else value

    async def forget(self, kind: str, ident: str) -> None:
        """Undo a ``first_use`` (the event it guarded was not published after all)."""
        await self.redis.delete(f"{P}{kind}:{ident}")
