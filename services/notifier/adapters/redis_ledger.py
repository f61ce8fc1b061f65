"""The idempotency ledger: one Redis hash per notification id (``<prefix>n:<id>``).

States: ``requested`` (seen, waiting: deferred or between retries) -> ``sending`` (a worker
holds a lease and is talking to the provider) -> ``sent`` | ``failed`` | ``suppressed`` |
``expired`` (terminal; the outcome record is stored with it, and ``published`` says whether
it reached the outcome topic). Transitions are Lua scripts, so two deliveries of one request
(a redelivery racing a rebalance) cannot both claim it.

Redis is an index: ``notification.outcome`` holds every terminal state, and an empty keyspace
is rebuilt from it (``adapters/rebuild.py``). ``<prefix>meta:built`` says it was; a guarded
ledger reads it with every ``get`` and refuses every ``claim`` without it (atomically, in the
claim script), so nothing is sent from a wiped ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas.codec import Record
from services.notifier.adapters.redis_state import RateWindow
from services.notifier.domain.ledger import TERMINAL, Claim, LedgerEntry

__all__ = ["TERMINAL", "Claim", "LedgerEntry", "RateWindow", "RedisLedger"]


_CLAIM = """
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unbuilt', '0', ''}
end
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'sent' or st == 'failed' or st == 'suppressed' or st == 'expired' then
  return {st, redis.call('HGET', KEYS[1], 'attempts') or '0', ''}
end
if st == 'sending' and tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') > tonumber(ARGV[1]) then
  return {'busy', redis.call('HGET', KEYS[1], 'attempts') or '0', redis.call('HGET', KEYS[1], 'lease_until')}
end
if KEYS[3] then
  local used = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  if used > tonumber(ARGV[5]) then
    redis.call('DECR', KEYS[3])
    return {'limited', redis.call('HGET', KEYS[1], 'attempts') or '0', ''}
  end
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


# (KEYS[3], ARGV[5], ARGV[6]: a recipient rate-limit window's counter, its limit and expiry,
# given with ``claim(limit=...)``; a slot is taken only with the lease, and given back if full.)

# Rebuild: a terminal state from the outcome topic, unless Redis already holds one.
_RESTORE = """
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'sent' or st == 'failed' or st == 'suppressed' or st == 'expired' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'outcome', ARGV[2], 'published', '1', 'attempts', ARGV[3])
redis.call('HDEL', KEYS[1], 'lease_until')
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# The outcome reached the topic. The entry is made terminal too if a wipe took it meanwhile (it
# was recorded before the wipe and published after it), so a later delivery finds it.
_PUBLISHED = """
local st = redis.call('HGET', KEYS[1], 'state')
if not (st == 'sent' or st == 'failed' or st == 'suppressed' or st == 'expired') then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'outcome', ARGV[2])
  redis.call('HDEL', KEYS[1], 'lease_until')
end
redis.call('HSET', KEYS[1], 'published', '1')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: marker, rebuild token. Marks the keyspace built only if it was not wiped (again) since
# the rebuild began: the token set at its start is still there.
_MARK_BUILT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], '1')
redis.call('DEL', KEYS[2])
return 1
"""


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
    """``guarded``: the keyspace must carry the built marker (a worker that can rebuild it);
    unguarded (benchmarks, handler tests without a broker) it is never looked at."""

    def __init__(
        self, redis: Redis[bytes], *, prefix: str = "notifier:", ttl_s: int = 30 * 24 * 3600, guarded: bool = False
    ):
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.guarded = guarded
        self.marker = f"{prefix}meta:built"
        self.token_key = f"{prefix}meta:rebuilding"
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)
        self._restore = redis.register_script(_RESTORE)
        self._published = redis.register_script(_PUBLISHED)
        self._mark_built = redis.register_script(_MARK_BUILT)

    def key(self, notification_id: str) -> str:
        return f"{self.prefix}n:{notification_id}"

    async def get(self, notification_id: str) -> LedgerEntry:
        """The entry, and (guarded) whether the keyspace is built, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        self.queue_get(pipe, notification_id)
        return self.entry_from(await pipe.execute())

    def queue_get(self, pipe: Pipeline[bytes], notification_id: str) -> int:
        """Queues ``get``'s reads on ``pipe``; returns how many replies ``entry_from`` takes."""
        pipe.hgetall(self.key(notification_id))
        if self.guarded:
            pipe.exists(self.marker)
            return 2
        return 1

    def entry_from(self, replies: Sequence[Any]) -> LedgerEntry:
        """The entry from ``queue_get``'s replies."""
        data = replies[0]
        built = bool(replies[1]) if self.guarded else True
        if not data:
            return LedgerEntry(None, 0, None, False, built)
        outcome = data.get(b"outcome")
        return LedgerEntry(
            state=data.get(b"state", b"").decode() or None,
            attempts=int(data.get(b"attempts", b"0")),
            outcome=_record_from_json(outcome) if outcome else None,
            published=data.get(b"published") == b"1",
            built=built,
        )

    async def mark_requested(self, notification_id: str) -> None:
        """Seen but not yet sending (deferred); never overwrites a later state."""
        key = self.key(notification_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(key, "state", "requested")
        pipe.expire(key, self.ttl_s)
        await pipe.execute()

    async def claim(
        self, notification_id: str, *, now: float, lease_s: float, limit: RateWindow | None = None
    ) -> Claim:
        """``unbuilt`` (guarded, the keyspace was wiped: rebuild first) or see ``Claim``. With
        ``limit``, a slot of that rate-limit window is taken in the same script, only if the
        lease is (``limited`` when the window is full)."""
        keys = [self.key(notification_id), self.marker]
        args: list[str | int | float] = [now, lease_s, self.ttl_s, "1" if self.guarded else "0"]
        if limit is not None:
            keys.append(limit.key)
            args += [limit.limit, limit.expire_s]
        status, attempts, extra = await self._claim(keys=keys, args=args)
        status, extra = status.decode(), extra.decode()
        if status == "busy":
            return Claim(status, int(attempts), lease_until=float(extra))
        if status == "limited":
            assert limit is not None
            return Claim(status, int(attempts), limited_until=limit.ends_at)
        return Claim(status, int(attempts), previous=extra)

    async def release(self, notification_id: str) -> None:
        """Back to ``requested`` after a transient failure (the retry will claim again)."""
        await self._release(keys=[self.key(notification_id)])

    async def finish(self, notification_id: str, state: str, outcome: Record) -> bool:
        """Record the terminal state with its outcome; False if it was already terminal."""
        assert state in TERMINAL
        done = await self._finish(keys=[self.key(notification_id)], args=[state, _record_to_json(outcome), self.ttl_s])
        return bool(done)

    async def mark_published(self, notification_id: str, state: str, outcome: Record) -> None:
        """``outcome`` (ending in ``state``) is on the topic."""
        assert state in TERMINAL
        args: list[bytes | str | int] = [state, _record_to_json(outcome), self.ttl_s]
        await self._published(keys=[self.key(notification_id)], args=args)

    # -- rebuild ----------------------------------------------------------------------------
    async def is_built(self) -> bool:
        return bool(await self.redis.exists(self.marker))

    async def begin_rebuild(self, token: str, lease_s: int = 120) -> bool:
        """Takes the rebuild lease; False while another replica holds it (it rebuilds, this one
        waits for its marker: two replicas overwriting each other's token never finished). A wipe
        drops the lease with the keyspace; a replica that died mid-rebuild loses it after ``lease_s``."""
        return bool(await self.redis.set(self.token_key, token, nx=True, ex=lease_s))

    async def mark_built(self, token: str) -> bool:
        """Sets the marker; False if the keyspace was wiped again since ``begin_rebuild``."""
        return bool(await self._mark_built(keys=[self.marker, self.token_key], args=[token]))

    async def restore_many(self, outcomes: Sequence[tuple[str, str, int, Record]]) -> int:
        """(notification id, terminal state, attempts, outcome record) from the outcome topic,
        in one round trip; an id already terminal in Redis keeps its entry. Returns how many
        entries were written."""
        if not outcomes:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for nid, state, attempts, record in outcomes:
            assert state in TERMINAL
            args: list[bytes | str | int] = [state, _record_to_json(record), str(attempts), self.ttl_s]
            await self._restore(keys=[self.key(nid)], args=args, client=pipe)
        return sum(int(n) for n in await pipe.execute())
