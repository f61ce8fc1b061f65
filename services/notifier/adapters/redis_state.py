"""The notifier's other Redis state: the suppression list, per-recipient rate-limit windows
and the retry backlog. Keys hold no address in clear (sha256), so a Redis dump leaks none."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from schemas.identity import erasure_hashes
from services.notifier.domain.suppression import Suppression, normalize_address


def _digest(channel: str, address: str) -> str:
    return hashlib.sha256(f"{channel}:{normalize_address(channel, address)}".encode()).hexdigest()[:40]


class RedisSuppressionList:
    """``<prefix>sup:<sha>`` -> reason. Rebuilt from ``lead.engagement`` by replaying it."""

    def __init__(self, redis: Redis[bytes], *, prefix: str = "notifier:"):
        self.redis = redis
        self.prefix = prefix

    def key(self, channel: str, address: str) -> str:
        return f"{self.prefix}sup:{_digest(channel, address)}"

    async def add(self, entry: Suppression) -> None:
        await self.redis.set(self.key(entry.channel, entry.address), entry.reason)

    async def reason(self, channel: str, address: str) -> str | None:
        return self.reason_from(await self.redis.get(self.key(channel, address)))

    @staticmethod
    def reason_from(value: bytes | None) -> str | None:
        return value.decode() if value is not None else None


@dataclass(frozen=True, slots=True)
class RateWindow:
    """A recipient rate-limit window for ``RedisLedger.claim``: its counter key, the most
    messages it allows, the counter's expiry and when the window ends."""

    key: str
    limit: int
    expire_s: int
    ends_at: float


class RedisRecipientLimiter:
    """At most ``limit`` messages to one address per fixed window: the window a claim counts
    against (``RedisLedger.claim(limit=...)`` takes its slot in the claim script, so a busy or
    finished id spends none). ``scope`` keeps separate counters (lead and internal messages to
    one address never count against each other's limit)."""

    def __init__(self, *, limit: int, window_s: int, prefix: str = "notifier:", scope: str = "rl"):
        self.limit = limit
        self.window_s = window_s
        self.prefix = prefix
        self.scope = scope

    def window(self, channel: str, address: str, now: float) -> RateWindow:
        """The address's current window (for ``RedisLedger.claim``, which counts it with the claim)."""
        window = int(now // self.window_s)
        key = f"{self.prefix}{self.scope}:{_digest(channel, address)}:{window}"
        return RateWindow(key, self.limit, self.window_s + 5, (window + 1) * self.window_s)


class RedisRetryBacklog:
    """Notification ids waiting on the retry topic (for the ``retry_backlog`` gauge)."""

    def __init__(self, redis: Redis[bytes], *, prefix: str = "notifier:"):
        self.redis = redis
        self.key = f"{prefix}retry_backlog"

    async def add(self, notification_id: str, due: float) -> int:
        pipe = self.redis.pipeline()
        pipe.zadd(self.key, {notification_id: due})
        pipe.zcard(self.key)
        _, size = await pipe.execute()
        return int(size)

    async def remove(self, notification_id: str) -> int:
        pipe = self.redis.pipeline()
        pipe.zrem(self.key, notification_id)
        pipe.zcard(self.key)
        _, size = await pipe.execute()
        return int(size)


class RedisErasedList:
    """``<prefix>erased:<hmac>`` -> when the person was erased (ISO time). The key is the keyed
    hash of the normalised address (``schemas.identity.keyed_hash``); no address is stored."""

    def __init__(self, redis: Redis[bytes], *, secret: str, prefix: str = "notifier:"):
        self.redis = redis
        self.secret = secret
        self.prefix = prefix

    def key(self, digest: str) -> str:
        return f"{self.prefix}erased:{digest}"

    def digest(self, channel: str, address: str) -> str | None:
        if channel == "email":
            return erasure_hashes(self.secret, email=address)[0] if address.strip() else None
        if channel in ("sms", "phone"):
            return erasure_hashes(self.secret, phone=address)[0] if address.strip() else None
        return None

    async def add(self, digests: Iterable[str], erased_at: datetime) -> int:
        keys = [self.key(d) for d in digests]
        if keys:
            await self.redis.mset({k: erased_at.isoformat() for k in keys})
        return len(keys)

    async def erased_at(self, channel: str, address: str) -> datetime | None:
        digest = self.digest(channel, address)
        if digest is None:
            return None
        return self.erased_at_from(await self.redis.get(self.key(digest)))

    @staticmethod
    def erased_at_from(value: bytes | None) -> datetime | None:
        return datetime.fromisoformat(value.decode()) if value is not None else None
