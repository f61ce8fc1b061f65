"""Lead profiles and identity links in Redis (keys under ``scoring:``).

- ``scoring:lead:<lead id>``: the lead's state (JSON), including the ids of the events
  already counted (idempotency travels with the state it protects);
- ``scoring:link:<identifier>``: the lead id a strong identifier belongs to; for a phone, the
  ids of the leads that gave it, space-separated (two or more: a shared number);
- ``scoring:model``: the active scoring model version (set by ``leadpipe scoring rescore``;
  absent means each worker's configured model). Every batch reads and watches it, so a
  worker switches models at its next batch, and a batch that was scored with the old model
  while the version changed is re-run rather than written.
- ``scoring:meta:built``: the keyspace holds the state (set after a rebuild from the state
  topic, ``adapters/state_log.py``). Every batch reads and watches it with its links: a Redis
  wiped under the worker is noticed before anything is decided on the empty keyspace.

Everything here is a copy of the compacted state topic (lead states and the active model);
links derive from the lead states. A batch is read and written under WATCH, so two workers
never overwrite each other's changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from leadpipe.runtime.stream import BatchConflict
from schemas.lead_captured.v1 import LeadCaptured
from services.scoring.domain.engagement import EngagementRecord
from services.scoring.domain.erasure import leads_to_erase, links_after_erasure
from services.scoring.domain.identity import is_strong
from services.scoring.domain.lead import CaptureRecord, Emitted, LeadState
from services.scoring.domain.snapshot import Snapshot

_TIME_FIELDS = ("created_at", "first_captured_at", "last_captured_at", "consent_given_at")
_TUPLE_FIELDS = (
    "identifiers",
    "product_interest",
    "suppressed_channels",
    "invalid_addresses",
    "seen",
    "merged_from",
    "consent_channels",
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _default(value: Any) -> Any:
    if isinstance(value, LeadCaptured):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot store {type(value).__name__}")


def dump_state(state: LeadState) -> bytes:
    return orjson.dumps(state, default=_default)


def encode_link(identifier: str, lead_ids: tuple[str, ...]) -> str:
    return " ".join(lead_ids) if not is_strong(identifier) else lead_ids[-1]


def decode_link(value: bytes | str) -> tuple[str, ...]:
    return tuple(_text(value).split())


def load_state(raw: bytes | str) -> LeadState:
    data: dict[str, Any] = orjson.loads(raw)
    for name in _TIME_FIELDS:
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    for name in _TUPLE_FIELDS:
        data[name] = tuple(data.get(name) or ())
    data["engagements"] = tuple(
        EngagementRecord(e["event_id"], e["kind"], datetime.fromisoformat(e["occurred_at"]), e["channel"])
        for e in data.get("engagements") or ()
    )
    if data.get("emitted"):
        data["emitted"] = Emitted(**data["emitted"])
    data["captures"] = tuple(
        CaptureRecord(
            c["capture_id"],
            c["event_id"],
            c["lead_id"],
            tuple(c["identifiers"]),
            LeadCaptured.model_validate(c["capture"]),
        )
        for c in data.get("captures") or ()
    )
    return LeadState(**data)


def links_of(states: Iterable[LeadState]) -> dict[str, tuple[str, ...]]:
    """The links these lead states make (what a rebuild restores)."""
    return _links((s.lead_id, s.identifiers) for s in states)


def _links(leads: Iterable[tuple[str, Iterable[str]]]) -> dict[str, tuple[str, ...]]:
    links: dict[str, tuple[str, ...]] = {}
    for lead_id, identifiers in leads:
        for identifier in identifiers:
            if is_strong(identifier):
                links[identifier] = (lead_id,)
            else:
                links[identifier] = (*links.get(identifier, ()), lead_id)
    return links


class RedisLeadStore:
    def __init__(self, redis: Redis[bytes], prefix: str = "scoring:"):
        self.redis = redis
        self.prefix = prefix
        self._pipe: Pipeline[bytes] | None = None

    def link_key(self, identifier: str) -> str:
        return f"{self.prefix}link:{identifier}"

    def lead_key(self, lead_id: str) -> str:
        return f"{self.prefix}lead:{lead_id}"

    @property
    def model_key(self) -> str:
        return f"{self.prefix}model"

    @property
    def built_key(self) -> str:
        return f"{self.prefix}meta:built"

    async def read(self, identifiers: Iterable[str]) -> Snapshot:
        """Links of the identifiers, the states of the leads they point at (and the links of
        those leads' phones, which a merge or split rewrites), the active model and the built
        marker, all watched."""
        ids = list(dict.fromkeys(identifiers))
        pipe = self.redis.pipeline(transaction=True)
        self._pipe = pipe
        keys = [self.model_key, self.built_key, *(self.link_key(i) for i in ids)]
        await pipe.watch(*keys)
        model, built, *values = await pipe.mget(keys)
        links = {i: decode_link(v) for i, v in zip(ids, values, strict=True) if v}
        lead_ids = sorted({lid for lids in links.values() for lid in lids})
        leads = await self._read_leads(pipe, lead_ids)
        phones = sorted({i for s in leads.values() for i in s.identifiers if not is_strong(i) and i not in links})
        if phones:
            more = [self.link_key(i) for i in phones]
            await pipe.watch(*more)
            links |= {i: decode_link(v) for i, v in zip(phones, await pipe.mget(more), strict=True) if v}
        return Snapshot(links=links, leads=leads, model_version=_text(model) if model else None, built=bool(built))

    async def read_leads(self, lead_ids: list[str]) -> Snapshot:
        """The states of these leads and the active model, watched (for re-scoring a chunk)."""
        pipe = self.redis.pipeline(transaction=True)
        self._pipe = pipe
        await pipe.watch(self.model_key)
        model = await pipe.get(self.model_key)
        leads = await self._read_leads(pipe, lead_ids)
        return Snapshot(links={}, leads=leads, model_version=_text(model) if model else None)

    async def active_model(self) -> str | None:
        value = await self.redis.get(self.model_key)
        return _text(value) if value else None

    async def set_active_model(self, version: str) -> str | None:
        """Make ``version`` the model every worker scores with; returns the previous one."""
        previous: bytes | None = await self.redis.set(self.model_key, version, get=True)  # type: ignore[assignment]
        return _text(previous) if previous else None

    async def lead_ids(self, count: int = 500) -> AsyncIterator[list[str]]:
        """Ids of every known lead, in chunks (a lead may appear twice while leads change)."""
        cut = len(self.lead_key(""))
        async for keys in self._scan_chunks(f"{self.prefix}lead:*", count):
            yield [_text(k)[cut:] for k in keys]

    async def _read_leads(self, pipe: Pipeline[bytes], lead_ids: list[str]) -> dict[str, LeadState]:
        if not lead_ids:
            return {}
        keys = [self.lead_key(i) for i in lead_ids]
        await pipe.watch(*keys)
        raws = await pipe.mget(keys)
        return {lid: load_state(raw) for lid, raw in zip(lead_ids, raws, strict=True) if raw}

    async def write(self, snap: Snapshot) -> None:
        """Write the batch's changes atomically; ``BatchConflict`` if another worker got there first."""
        pipe = self._pipe or self.redis.pipeline(transaction=True)
        self._pipe = None
        try:
            pipe.multi()
            if snap.changed_links:
                pipe.mset({self.link_key(i): encode_link(i, lids) for i, lids in snap.changed_links.items()})
            if snap.changed_leads:
                pipe.mset({self.lead_key(lid): dump_state(s) for lid, s in snap.changed_leads.items()})
            for lid in snap.deleted_leads:
                pipe.delete(self.lead_key(lid))
            await pipe.execute()
        except WatchError as exc:
            raise BatchConflict(str(exc)) from exc
        finally:
            await pipe.reset()

    async def erase(
        self, keys: list[str], lead_ids: list[str], *, held: set[str] | None = None
    ) -> tuple[list[str], int]:
        """Deletes the leads an erasure request takes (``domain.erasure``) and unlinks their
        identifiers, in one watched transaction (a batch touching the same keys retries after it).
        Returns the erased lead ids and how many links changed or went; ``held`` (when given)
        receives every identifier the erased leads held (their data keys are destroyed too)."""
        while True:
            pipe = self.redis.pipeline(transaction=True)
            try:
                link_keys = [self.link_key(k) for k in keys]
                if link_keys:
                    await pipe.watch(*link_keys)
                values = await pipe.mget(link_keys) if link_keys else []
                links = {k: decode_link(v) for k, v in zip(keys, values, strict=True) if v}
                candidates = sorted({*lead_ids, *(lid for lids in links.values() for lid in lids)})
                leads = await self._read_leads(pipe, candidates)
                erased = leads_to_erase(
                    keys=keys, links=links, identifiers={lid: st.identifiers for lid, st in leads.items()},
                    lead_ids=lead_ids,
                )  # fmt: skip
                theirs = sorted({i for lid in erased for i in leads[lid].identifiers} - set(links))
                if theirs:
                    more = [self.link_key(i) for i in theirs]
                    await pipe.watch(*more)
                    links |= {i: decode_link(v) for i, v in zip(theirs, await pipe.mget(more), strict=True) if v}
                changed = links_after_erasure(links, erased)
                pipe.multi()
                for lid in erased:
                    pipe.delete(self.lead_key(lid))
                for ident, lids in changed.items():
                    if lids:
                        pipe.set(self.link_key(ident), encode_link(ident, lids))
                    else:
                        pipe.delete(self.link_key(ident))
                await pipe.execute()
                if held is not None:
                    held.update(i for lid in erased for i in leads[lid].identifiers)
                return sorted(erased), len(changed)
            except WatchError:
                continue
            finally:
                await pipe.reset()

    async def abandon(self) -> None:
        if self._pipe is not None:
            await self._pipe.reset()
            self._pipe = None

    async def all_leads(self, count: int = 500) -> AsyncIterator[list[LeadState]]:
        """Every known lead, in chunks (for re-scoring)."""
        async for keys in self._scan_chunks(f"{self.prefix}lead:*", count):
            raws = await self.redis.mget(keys)
            yield [load_state(r) for r in raws if r]

    async def count_leads(self) -> int:
        n = 0
        async for keys in self._scan_chunks(f"{self.prefix}lead:*", 1000):
            n += len(keys)
        return n

    async def _scan_chunks(self, pattern: str, count: int) -> AsyncIterator[list[Any]]:
        cursor = 0
        while True:
            cursor, keys = await self.redis.scan(cursor, match=pattern, count=count)
            if keys:
                yield keys
            if cursor == 0:
                return

    async def put_leads(self, states: list[LeadState]) -> None:
        if states:
            await self.redis.mset({self.lead_key(s.lead_id): dump_state(s) for s in states})

    # -- rebuild ----------------------------------------------------------------------------
    @property
    def rebuilding_key(self) -> str:
        return f"{self.prefix}meta:rebuilding"

    async def is_built(self) -> bool:
        return bool(await self.redis.exists(self.built_key))

    async def begin_rebuild(self, token: str, lease_s: int = 120) -> bool:
        """Takes the rebuild lease; False while another replica holds it (it rebuilds, this one
        waits for its marker). A wipe drops the lease with the keyspace; a replica that died
        mid-rebuild loses it after ``lease_s``."""
        return bool(await self.redis.set(self.rebuilding_key, token, nx=True, ex=lease_s))

    async def restore(self, raw_states: Iterable[bytes], model_version: str | None) -> int:
        """Put back lead states read from the state topic, with their links and the active
        model. Nothing that exists is overwritten: a worker that finished its own rebuild first
        may already have moved a lead on. Returns how many leads were put back."""
        # Only the id and identifiers are needed to restore a state: not the whole model.
        leads = [(str(d["lead_id"]), list(d.get("identifiers") or ()), raw) for raw in raw_states
                 if (d := orjson.loads(raw))]  # fmt: skip
        pipe = self.redis.pipeline(transaction=False)
        for lead_id, _, raw in leads:
            pipe.set(self.lead_key(lead_id), raw, nx=True)
        for identifier, lids in _links((lead_id, ids) for lead_id, ids, _ in leads).items():
            pipe.set(self.link_key(identifier), encode_link(identifier, lids), nx=True)
        if model_version:
            pipe.set(self.model_key, model_version, nx=True)
        done = await pipe.execute()
        return sum(bool(x) for x in done[: len(leads)])

    async def mark_built(self, token: str) -> bool:
        """Sets the built marker; False if the keyspace was wiped again since ``begin_rebuild``."""
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(self.rebuilding_key)
            if _text(await pipe.get(self.rebuilding_key) or b"") != token:
                await pipe.reset()
                return False
            pipe.multi()
            pipe.set(self.built_key, "1")
            pipe.delete(self.rebuilding_key)
            try:
                await pipe.execute()
            except WatchError:
                return False
        return True
