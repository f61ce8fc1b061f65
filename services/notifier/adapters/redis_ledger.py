"""The idempotency ledger: one Redis hash per notification id (``<prefix>n:<id>``).

States: ``requested`` (seen, waiting: deferred or between retries) -> ``sending`` (a worker
holds a lease and is talking to the provider) -> ``sent`` | ``failed`` | ``suppressed`` |
``expired`` (terminal; the outcome record is stored with it, and ``published`` says whether
it reached the outcome topic). Transitions are Lua scripts, so two deliveries of one request
(a redelivery racing a rebalance) cannot both claim it.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from schemas.codec import Record

TERMINAL = ("sent", "failed", "suppressed", "expired")

_CLAIM = """
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'sent' or st == 'failed' or st == 'suppressed' or st == 'expired' then
  return {st, redis.call('HGET', KEYS[1], 'attempts') or '0', ''}
end
if st == 'sending' and tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') > tonumber(ARGV[1]) then
  return {'busy', redis.call('HGET', KEYS[1], 'attempts') or '0', redis.call('HGET', KEYS[1], 'lease_until')}
end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'sending', 'lease_until', tostring(tonumber(ARGV[1]) + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'claimed', tostring(n), st or ''}
"""

_FINISH = """
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'sent' or st == 'failed' or st == 'suppressed' or st == 'expired' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'outcome', ARGV[2], 'published', '0')
redis.call('HDEL', KEYS[1], 'lease_until')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'sending' then
  redis.call('HSET', KEYS[1], 'state', 'requested')
  redis.call('HDEL', KEYS[1], 'lease_until')
end
return 1
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    state: str | None
    attempts: int
    outcome: Record | None
    published: bool

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True, slots=True)
class Claim:
    """``status`` is ``claimed`` (go ahead and send), ``busy`` (another worker holds a live
    lease until ``lease_until``) or a terminal state. ``previous == "sending"`` means an
    earlier delivery died mid-send: the one case where the provider may already have it."""

    status: str
    attempts: int
    previous: str = ""
    lease_until: float = 0.0


def _record_to_json(record: Record) -> bytes:
    return orjson.dumps(
        {
            "key": record.key.decode(),
            "value": record.value.decode(),
            "headers": [[k, v.decode()] for k, v in record.headers],
        }
    )


def _record_from_json(raw: bytes) -> Record:
    data = orjson.loads(raw)
    return Record(
        key=data["key"].encode(), value=data["value"].encode(), headers=[(k, v.encode()) for k, v in data["headers"]]
    )


class RedisLedger:
    def __init__(self, redis: Redis[bytes], *, prefix: str = "notifier:", ttl_s: int = 30 * 24 * 3600):
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)

    def key(self, notification_id: str) -> str:
        return f"{self.prefix}n:{notification_id}"

    async def get(self, notification_id: str) -> LedgerEntry:
        data = await self.redis.hgetall(self.key(notification_id))
        if not data:
            return LedgerEntry(None, 0, None, False)
        outcome = data.get(b"outcome")
        return LedgerEntry(
            state=data.get(b"state", b"").decode() or None,
            attempts=int(data.get(b"attempts", b"0")),
            outcome=_record_from_json(outcome) if outcome else None,
            published=data.get(b"published") == b"1",
        )

    async def mark_requested(self, notification_id: str) -> None:
        """Seen but not yet sending (deferred); never overwrites a later state."""
        key = self.key(notification_id)
        await self.redis.hsetnx(key, "state", "requested")
        await self.redis.expire(key, self.ttl_s)

    async def claim(self, notification_id: str, *, now: float, lease_s: float) -> Claim:
        status, attempts, extra = await self._claim(keys=[self.key(notification_id)], args=[now, lease_s, self.ttl_s])
        status, extra = status.decode(), extra.decode()
        if status == "busy":
            return Claim(status, int(attempts), lease_until=float(extra))
        return Claim(status, int(attempts), previous=extra)

    async def release(self, notification_id: str) -> None:
        """Back to ``requested`` after a transient failure (the retry will claim again)."""
        await self._release(keys=[self.key(notification_id)])

    async def finish(self, notification_id: str, state: str, outcome: Record) -> bool:
        """Record the terminal state with its outcome; False if it was already terminal."""
        assert state in TERMINAL
        done = await self._finish(keys=[self.key(notification_id)], args=[state, _record_to_json(outcome), self.ttl_s])
        return bool(done)

    async def mark_published(self, notification_id: str) -> None:
        await self.redis.hset(self.key(notification_id), "published", "1")
