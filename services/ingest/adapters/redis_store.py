"""Ingest's Redis state (keys prefixed ``ingest:``): rate limits, idempotency keys, scan
dedupe, webhook replay guard and first-answer-wins for assignment links. All of it may be
lost without losing a lead (it only guards against abuse and repeats)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from leadpipe.runtime.health import redis_reachable

P = "ingest:"

#: Counts a hit in each window in turn and stops at the first one over its limit (later windows
#: are not counted then): KEYS the window counters, ARGV[1] their TTL, ARGV[1 + i] KEYS[i]'s limit.
HIT_ALL = """
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  if n > tonumber(ARGV[i + 1]) then return 0 end
end
return 1
"""


class RedisStore:
    def __init__(self, redis: Redis[bytes]):
        self.redis = redis
        self._hit_all = redis.register_script(HIT_ALL)

    async def ping(self) -> bool:
        return await redis_reachable(self.redis)

    async def hit(self, limits: Sequence[tuple[str, str, int]], window_s: int = 60) -> bool:
        """Counts a hit in the fixed window of each ``(scope, ident, limit)`` in turn, in one round
        trip; False at the first one over its limit (the ones after it are not counted, so an
        address over its own limit does not use up a form's)."""
        bucket = int(time.time() // window_s)
        keys = [f"{P}rl:{scope}:{ident}:{bucket}" for scope, ident, _ in limits]
        return bool(await self._hit_all(keys=keys, args=[window_s * 2, *(limit for _, _, limit in limits)]))

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
