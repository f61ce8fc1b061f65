"""Lead state, the due-time index and sales capacity in Redis (``nurture:`` keys).

Redis is an index and a cache: every lead state is also appended to the compacted state topic
(``adapters/state_log.py``), from which an empty Redis is rebuilt. Writes that must be atomic
across worker replicas are Lua scripts:

- ``save``: compare-and-set on the state's version, and the due index, the overflow-queue
  index (``queue``: lead id -> its queue entry), the company domain's owner and the stage
  counts move with it (one round trip; a lost race moves nothing);
- ``claim``: takes due leads and pushes them a lease into the future, so a worker that dies
  mid-tick leaves them to be claimed again (lost never, repeated with the same touch ids);
- ``reserve``: one rep per (lead, attempt) and never beyond a rep's daily capacity.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from schemas.base import Grade
from services.nurture.domain.routing import Load, QueueEntry
from services.nurture.domain.state import LeadState

log = logging.getLogger(__name__)

_SAVE = """
local cur = redis.call('HGET', KEYS[1], 'v')
if (cur or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
if ARGV[4] == '' then redis.call('ZREM', KEYS[2], ARGV[5]) else redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5]) end
if ARGV[6] == '' then redis.call('HDEL', KEYS[3], ARGV[5]) else redis.call('HSET', KEYS[3], ARGV[5], ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSETNX', KEYS[4], ARGV[7], ARGV[8]) end
for i = 9, #ARGV, 2 do
  if ARGV[i] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[i], -1) end
  redis.call('HINCRBY', KEYS[5], ARGV[i + 1], 1)
end
return 1
"""

_RESTORE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2])
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[4]) else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
if ARGV[5] == '' then redis.call('HDEL', KEYS[3], ARGV[4]) else redis.call('HSET', KEYS[3], ARGV[4], ARGV[5]) end
return 1
"""

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""

# KEYS: lock, capacity counter, last-assigned hash. ARGV: rep, capacity, ttl, now, count(1|0)
# Returns the rep holding the (lead, attempt) lock, or '' when the rep is at capacity.
_RESERVE = """
local held = redis.call('GET', KEYS[1])
if held then return held end
if ARGV[5] == '1' then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= tonumber(ARGV[2]) then return '' end
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 172800)
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return ARGV[1]
"""

_RELEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then redis.call('DECR', KEYS[1]) end
return used
"""


class RedisNurtureStore:
    def __init__(self, redis: Redis[bytes], prefix: str = "nurture:"):
        self.redis = redis
        self.prefix = prefix
        self.due_key = f"{prefix}due"
        self.queue_key = f"{prefix}queue"
        self._save = redis.register_script(_SAVE)
        self._restore = redis.register_script(_RESTORE)
        self._claim = redis.register_script(_CLAIM)
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    def _lead(self, lead_id: str) -> str:
        return f"{self.prefix}lead:{lead_id}"

    async def load(self, lead_id: str) -> LeadState | None:
        raw = await self.redis.hget(self._lead(lead_id), "s")
        return None if raw is None else LeadState.model_validate_json(raw)

    async def load_many(self, lead_ids: Iterable[str]) -> dict[str, LeadState | None]:
        """Several leads' states in one round trip; a lead whose stored state does not parse is
        left out (its own ``load`` then raises, for that event alone)."""
        states, _ = await self._load_many(lead_ids, marker=False)
        return states

    async def load_many_checked(self, lead_ids: Iterable[str]) -> tuple[dict[str, LeadState | None], bool]:
        """``load_many`` and whether the keyspace is built (``meta:built``), in the same round
        trip: a Redis wiped under the worker is seen before the batch decides anything."""
        return await self._load_many(lead_ids, marker=True)

    async def _load_many(self, lead_ids: Iterable[str], *, marker: bool) -> tuple[dict[str, LeadState | None], bool]:
        ids = list(dict.fromkeys(lead_ids))
        if not ids and not marker:
            return {}, True
        pipe = self.redis.pipeline(transaction=False)
        for lead_id in ids:
            pipe.hget(self._lead(lead_id), "s")
        if marker:
            pipe.exists(f"{self.prefix}meta:built")
        raws = await pipe.execute()
        built = bool(raws.pop()) if marker else True
        out: dict[str, LeadState | None] = {}
        for lead_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                out[lead_id] = None
                continue
            try:
                out[lead_id] = LeadState.model_validate_json(raw)
            except ValueError:
                continue
        return out, built

    async def save(
        self,
        state: LeadState,
        expected_version: int,
        due: datetime | None,
        queued: QueueEntry | None = None,
        *,
        owner_claim: tuple[str, str] | None = None,
        moves: Iterable[tuple[str | None, str]] = (),
    ) -> bool:
        """Writes ``state`` (its version must be ``expected_version + 1``) if nobody wrote since;
        ``queued`` is its overflow-queue entry (None: not waiting). With the write, in the same
        script: the company domain's owner is claimed (``owner_claim``: domain, rep; kept if one
        is there) and the stage ``moves`` are counted, so counts move exactly when a state does."""
        score = "" if due is None else repr(due.timestamp())
        keys = [self._lead(state.lead_id), self.due_key, self.queue_key, f"{self.prefix}owners", f"{self.prefix}stages"]
        args = [str(expected_version), str(state.version), state.model_dump_json(), score, state.lead_id,
                _entry_json(queued), *(owner_claim or ("", ""))]  # fmt: skip
        for old, new in moves:
            args += [old or "", new]
        return bool(await self._save(keys=keys, args=args))

    async def restore(self, raw_state: bytes, due: datetime | None, queued: QueueEntry | None = None) -> bool:
        """Rebuild: keeps whichever of Redis and the topic has the newer version."""
        state = LeadState.model_validate_json(raw_state)
        score = "" if due is None else repr(due.timestamp())
        keys = [self._lead(state.lead_id), self.due_key, self.queue_key]
        args: list[bytes | str] = [str(state.version), raw_state, score, state.lead_id, _entry_json(queued)]
        return bool(await self._restore(keys=keys, args=args))

    async def queue(self) -> list[QueueEntry]:
        """Every lead waiting in an overflow queue (all teams; ``routing.queue_order`` orders them).
        An entry that does not parse is left out and logged (its lead's next save rewrites it)."""
        out = []
        for lead_id, value in (await self.redis.hgetall(self.queue_key)).items():
            try:
                out.append(_entry(lead_id.decode(), value))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("overflow queue entry of %s does not parse, passed over: %s", lead_id.decode(), exc)
        return out

    async def forget(self, lead_id: str) -> None:
        """Drops the indexes of a lead that no longer exists."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.due_key, lead_id)
        pipe.hdel(self.queue_key, lead_id)
        await pipe.execute()

    async def states(self, count: int = 500) -> AsyncIterator[list[LeadState]]:
        """Every lead state, a SCAN chunk at a time (an erasure looks a person up this way: nurture
        keeps no index by address, and erasures are rare)."""
        async for keys in self.redis.scan_iter(match=f"{self.prefix}lead:*", count=count):
            raw = await self.redis.hget(keys, "s")
            if raw is not None:
                try:
                    yield [LeadState.model_validate_json(raw)]
                except ValueError:
                    continue

    async def erase(self, lead_id: str) -> int:
        """Deletes the lead's state, its due time, its queue place and its assignment reservations;
        returns how many keys went. A save racing with it fails its version check (no key: 0)."""
        assign = [k async for k in self.redis.scan_iter(match=f"{self.prefix}assign:{lead_id}:*", count=500)]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._lead(lead_id), *assign)
        pipe.zrem(self.due_key, lead_id)
        pipe.hdel(self.queue_key, lead_id)
        deleted, _, _ = await pipe.execute()
        return int(deleted)

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[str]:
        ids = await self._claim(keys=[self.due_key], args=[repr(now), repr(now + lease_s), str(limit)])
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def set_due(self, lead_id: str, due: datetime | None) -> None:
        if due is None:
            await self.redis.zrem(self.due_key, lead_id)
        else:
            await self.redis.zadd(self.due_key, {lead_id: due.timestamp()})

    async def next_due(self) -> float | None:
        first = await self.redis.zrange(self.due_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def due_counts(self, now: float, overdue_after_s: float = 60.0) -> tuple[int, int]:
        due, overdue = await asyncio.gather(
            self.redis.zcount(self.due_key, "-inf", now), self.redis.zcount(self.due_key, "-inf", now - overdue_after_s)
        )  # one round trip (runtime.redis_client batches what is awaited in one tick)
        return int(due), int(overdue)

    def _cap(self, rep_id: str, day: str) -> str:
        return f"{self.prefix}cap:{rep_id}:{day}"

    async def reserve(
        self, lead_id: str, attempt: int, rep_id: str, day: str, capacity: int, *, count: bool, ttl_s: int = 30 * 86400
    ) -> str | None:
        """The rep that holds this (lead, attempt): ``rep_id`` if reserved now, another rep if a
        replica got there first, None if ``rep_id`` is at capacity."""
        keys = [f"{self.prefix}assign:{lead_id}:{attempt}", self._cap(rep_id, day), f"{self.prefix}last_assigned"]
        args = [rep_id, str(capacity), str(ttl_s), repr(time.time()), "1" if count else "0"]
        held: Any = await self._reserve(keys=keys, args=args)
        text = held.decode() if isinstance(held, bytes) else str(held)
        return text or None

    async def restore_capacity(self, used: dict[tuple[str, str], int]) -> None:
        """Rebuild: each rep's count for a day is at least what the lead states hold (a count a
        reservation made since the wipe already raised is kept)."""
        if not used:
            return
        keys = [self._cap(rep_id, day) for rep_id, day in used]
        now = await self.redis.mget(keys)
        pipe = self.redis.pipeline(transaction=False)
        for key, n, current in zip(keys, used.values(), now, strict=True):
            if n > int(current or 0):
                pipe.set(key, n, ex=172800)
        await pipe.execute()

    async def release(self, rep_id: str, day: str) -> None:
        await self._release(keys=[self._cap(rep_id, day)])

    async def loads(self, reps: Iterable[tuple[str, str]]) -> dict[str, Load]:
        pairs = list(reps)
        if not pairs:
            return {}
        used, last = await asyncio.gather(
            self.redis.mget([self._cap(r, d) for r, d in pairs]),
            self.redis.hmget(f"{self.prefix}last_assigned", [r for r, _ in pairs]),
        )
        return {r: Load(int(u or 0), float(t or 0.0)) for (r, _), u, t in zip(pairs, used, last, strict=True)}

    async def routing_view(
        self, reps: Iterable[tuple[str, str]], domains: Iterable[str]
    ) -> tuple[dict[str, Load], dict[str, str | None]]:
        """``loads`` and the owners of ``domains``, in one round trip (what routing reads before it
        reserves)."""
        pairs, names = list(reps), list(domains)
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget([self._cap(r, d) for r, d in pairs] or [self._cap("", "")])
        pipe.hmget(f"{self.prefix}last_assigned", [r for r, _ in pairs] or [""])
        if names:
            pipe.hmget(f"{self.prefix}owners", names)
        used, last, *owned = await pipe.execute()
        loads = {r: Load(int(u or 0), float(t or 0.0)) for (r, _), u, t in zip(pairs, used, last, strict=False)}
        owners = {
            name: (o.decode() if o is not None else None)
            for name, o in zip(names, owned[0] if owned else [], strict=True)
        }
        return loads, owners

    async def stage_counts(self) -> dict[str, int]:
        raw = await self.redis.hgetall(f"{self.prefix}stages")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def is_built(self) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}meta:built"))

    async def mark_built(self) -> None:
        await self.redis.set(f"{self.prefix}meta:built", "1")


def _entry_json(entry: QueueEntry | None) -> str:
    if entry is None:
        return ""
    return json.dumps({"team": entry.team, "grade": entry.grade.value, "score": entry.score,
                       "since": entry.since.isoformat(), "exclude": list(entry.exclude)})  # fmt: skip


def _entry(lead_id: str, raw: bytes) -> QueueEntry:
    d = json.loads(raw)
    return QueueEntry(lead_id, str(d["team"]), Grade(d["grade"]), float(d["score"]),
                      datetime.fromisoformat(d["since"]), tuple(d.get("exclude") or ()))  # fmt: skip
