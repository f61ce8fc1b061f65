"""The data-key store of crypto-shredding (``schemas.pii``) on Redis, and its installation.

Keys live under ``pkey:<kid>`` -> ``<version>:<base64 key>`` in a Redis database of their own
(``LEADPIPE_KEYSTORE_URL``, e.g. ``redis://host:6379/1``), shared by every service and the ops
CLI. It is the one store a service reads outside its own keyspace: the key of a person must be
the same wherever their events are written or read. Destroying a key is ``DEL``: after it no copy
of the person's records (topics, dead-letter topics, the ingest spool) can be read again, unless
a backup of this database brings the key back (docs/privacy.md, backups).

Two clients: a synchronous one for the codec (synchronous, called from many places: the CLI,
rebuilds, anything not prefetched) and an asyncio one with which the workers and ingest fill the
keyring's cache before the codec runs (``prefetch_records``, ``prepare_keys``: one round trip per
batch instead of a blocking one per new person). Creating a key is one round trip either way: a
Lua script that reads the key and sets it when absent, atomically (two processes racing get the
same key; an erasure's DEL lands either before it, and a new key is made, or after it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import redis
import redis.asyncio
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from leadpipe.runtime.redis_client import redis_client
from leadpipe.runtime.settings import RedisClientSettings
from schemas.person_erased.v1 import ErasedItem
from schemas.pii import (
    TOKEN_PREFIX,
    Keyring,
    KeyringMissing,
    SubjectErased,
    current_keyring,
    lead_ref,
    new_key,
    use_keyring,
)

log = logging.getLogger(__name__)

PREFIX = "pkey:"


class KeyStoreSettings(RedisClientSettings):
    """Where the data keys live. Without ``LEADPIPE_KEYSTORE_URL`` nothing is encrypted (the
    records are written as before): every deployment that holds personal data sets it."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    leadpipe_keystore_url: str | None = None
    leadpipe_privacy_secret: str = "dev-privacy-secret"
    leadpipe_env: Literal["development", "production"] = "development"
    # How long a process uses a cached key without asking the store again: the longest a key
    # destroyed by another process is still used here (every erasure request clears the cache).
    leadpipe_keystore_cache_s: float = Field(default=30.0, ge=0, le=3600)


class MissingKeyStore(RuntimeError):
    """A production process was started without ``LEADPIPE_KEYSTORE_URL``."""


class KeyStoreUnavailable(ConnectionError):
    """The key store cannot be reached: nothing can be sealed or opened (a transient failure:
    workers retry the event; ingest answers 503 with Retry-After)."""


#: Get-or-create in one atomic step: KEYS[1] the key's name, ARGV[1] the new value to set when absent.
GET_OR_CREATE = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""
GET_OR_CREATE_SHA = hashlib.sha1(GET_OR_CREATE.encode()).hexdigest()


class RedisKeyStore:
    """``schemas.pii.KeyStore`` and ``AsyncKeyStore`` on Redis; a Redis failure is a
    ``KeyStoreUnavailable``. The asyncio client (``url``) is made on first use in the running
    event loop (a new loop gets its own); ``aclose`` closes it."""

    def __init__(
        self, client: redis.Redis[bytes], prefix: str = PREFIX, *, url: str | None = None, autopipeline: bool = True
    ):
        self.redis = client
        self.prefix = prefix
        self.url = url
        self.autopipeline = autopipeline
        self._get_or_create = client.register_script(GET_OR_CREATE)
        self._aio: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis[bytes]] | None = None

    @classmethod
    def from_url(cls, url: str, *, autopipeline: bool = True) -> RedisKeyStore:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, url=url, autopipeline=autopipeline)

    @staticmethod
    def _load(raw: bytes | None) -> tuple[str, bytes] | None:
        if raw is None:
            return None
        version, _, key = raw.decode().partition(":")
        return version, base64.b64decode(key)

    @staticmethod
    def _new_value() -> str:
        version, key = new_key()
        return f"{version}:{base64.b64encode(key).decode()}"

    def get(self, kid: str) -> tuple[str, bytes] | None:
        try:
            return self._load(self.redis.get(self.prefix + kid))
        except redis.RedisError as exc:
            raise KeyStoreUnavailable(f"key store unreachable: {exc}") from exc

    def get_or_create(self, kid: str) -> tuple[str, bytes]:
        try:
            raw = self._get_or_create(keys=[self.prefix + kid], args=[self._new_value()])
        except redis.RedisError as exc:
            raise KeyStoreUnavailable(f"key store unreachable: {exc}") from exc
        found = self._load(raw)
        assert found is not None, "the script returns the key it found or set"
        return found

    # -- without blocking the event loop (schemas.pii.AsyncKeyStore) -----------------------------
    def _client(self) -> redis.asyncio.Redis[bytes]:
        if self.url is None:
            raise KeyStoreUnavailable("key store: this store was built from a client, not a URL: no async client")
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio[0] is not loop:
            client = redis_client(self.url, autopipeline=self.autopipeline, socket_timeout=5, socket_connect_timeout=5)
            self._aio = (loop, client)
        return self._aio[1]

    async def fetch(self, kids: Sequence[str], create: Sequence[str] = ()) -> dict[str, tuple[str, bytes]]:
        try:
            return await self._fetch(kids, create)
        except redis.RedisError as exc:
            raise KeyStoreUnavailable(f"key store unreachable: {exc}") from exc

    async def _fetch(self, kids: Sequence[str], create: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        client = self._client()
        if not create:  # the readers' case: one MGET
            values = await client.mget([self.prefix + k for k in kids]) if kids else []
            return {kid: found for kid, raw in zip(kids, values, strict=True) if (found := self._load(raw))}
        results = await self._pipelined(client, kids, create)
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
            # a Redis restarted (or its scripts flushed): loaded once, then the batch again
            await client.script_load(GET_OR_CREATE)  # type: ignore[no-untyped-call]
            results = await self._pipelined(client, kids, create)
        for r in results:
            if isinstance(r, Exception):
                raise r
        values = list(results[0]) if kids else []
        values += results[1 if kids else 0 :]
        return {kid: found for kid, raw in zip([*kids, *create], values, strict=True) if (found := self._load(raw))}

    async def _pipelined(
        self, client: redis.asyncio.Redis[bytes], kids: Sequence[str], create: Sequence[str]
    ) -> list[Any]:
        # EVALSHA, not the Script object: a pipeline with scripts asks SCRIPT EXISTS first (a
        # second round trip each time); a missing script is loaded once instead (NoScriptError)
        sha = GET_OR_CREATE_SHA
        async with client.pipeline(transaction=False) as pipe:
            if kids:
                pipe.mget([self.prefix + k for k in kids])
            for kid in create:
                pipe.evalsha(sha, 1, self.prefix + kid, self._new_value())
            return list(await pipe.execute(raise_on_error=False))

    async def aclose(self) -> None:
        if self._aio is not None:
            loop, client = self._aio
            self._aio = None
            if loop is asyncio.get_running_loop():  # another loop's client cannot be closed from here
                await client.aclose()  # type: ignore[attr-defined]  # stubs predate aclose

    def destroy(self, kids: Iterable[str]) -> int:
        names = [self.prefix + k for k in kids]
        try:
            return int(self.redis.delete(*names)) if names else 0
        except redis.RedisError as exc:
            raise KeyStoreUnavailable(f"key store unreachable: {exc}") from exc

    def count(self) -> int:
        return sum(1 for _ in self.redis.scan_iter(match=self.prefix + "*", count=1000))


def keyring_from(settings: KeyStoreSettings) -> Keyring | None:
    if not settings.leadpipe_keystore_url:
        return None
    store = RedisKeyStore.from_url(settings.leadpipe_keystore_url, autopipeline=settings.redis_autopipeline)
    return Keyring(store, settings.leadpipe_privacy_secret, cache_ttl_s=settings.leadpipe_keystore_cache_s,
                   prefetch_store=store)  # fmt: skip


def install_from_env(service: str) -> Keyring | None:
    """Builds the keyring from the environment and makes it the codec's (once per process; a
    keyring already installed is kept). Called by every service's entrypoint and the CLI."""
    ring = current_keyring()
    if ring is not None:
        return ring
    settings = KeyStoreSettings()
    ring = keyring_from(settings)
    if ring is None:
        if settings.leadpipe_env == "production":
            # Production without a key store would publish personal fields in clear, where no
            # erasure can reach them before retention: refuse to start rather than warn.
            raise MissingKeyStore(f"{service}: LEADPIPE_KEYSTORE_URL must be set when LEADPIPE_ENV=production")
        log.warning("%s: LEADPIPE_KEYSTORE_URL is not set: personal fields go to Kafka unencrypted", service)
        return None
    use_keyring(ring)
    return ring


# -- hooks for the services (privacy: crypto-shredding) -------------------------------------------
def destroy_keys(refs: Iterable[str]) -> int:
    """Destroys the data keys of these person refs (``schemas.pii.refs_for``) with the process's
    keyring; 0 when none is installed. Idempotent: a key already gone counts 0."""
    ring = current_keyring()
    refs = list(refs)
    if ring is None or not refs:
        return 0
    n = ring.destroy(refs)
    log.info("destroyed %d data key(s) of an erased person", n)
    return n


async def prefetch_records(values: Iterable[bytes | None]) -> int:
    """Caches the keys the codec will need to open these raw record values, in one round trip
    (``Keyring.prefetch``). Best effort: on failure the codec asks the store itself (and a
    transient failure is retried there), so it is logged, never raised. Returns keys asked for."""
    ring = current_keyring()
    if ring is None:
        return 0
    try:
        return await ring.prefetch(values)
    except Exception as exc:
        log.warning("prefetching data keys failed (the codec will ask the store itself): %s", exc)
        return 0


async def prepare_keys(refs: Iterable[str | None], *, existing: Iterable[str] = ()) -> int:
    """Caches the keys the codec will seal with, in one round trip (``Keyring.prepare``): those
    of ``refs`` created when absent, those of ``existing`` only read. Best effort, as
    ``prefetch_records``. Call it only for refs the codec is about to seal under: it creates keys."""
    ring = current_keyring()
    if ring is None:
        return 0
    try:
        return await ring.prepare([r for r in refs if r is not None], existing=existing)
    except Exception as exc:
        log.warning("preparing data keys failed (the codec will ask the store itself): %s", exc)
        return 0


async def prepare_state_keys(lead_ids: Iterable[str]) -> int:
    """``prepare_keys`` for the leads whose state values are about to be sealed (``seal_state``)."""
    return await prepare_keys(lead_ref(lid) for lid in lead_ids)


async def close_keyring() -> None:
    """Closes the installed keyring's asyncio client (if it has one) in the running loop."""
    ring = current_keyring()
    store = ring.prefetch_store if ring is not None else None
    if isinstance(store, RedisKeyStore):
        await store.aclose()


def shredding_enabled() -> bool:
    return current_keyring() is not None


def seal_state(lead_id: str, value: bytes) -> bytes:
    """A state-topic value sealed under the lead's key (plain when no keyring is installed)."""
    ring = current_keyring()
    return ring.seal_bytes(lead_ref(lead_id), value) if ring is not None else value


def open_state(value: bytes) -> bytes | None:
    """A state-topic value opened; None when its lead was erased (its key is gone), as a tombstone."""
    ring = current_keyring()
    if not value.startswith(TOKEN_PREFIX.encode()):
        return value
    if ring is None:
        raise KeyringMissing(
            "state value is encrypted and this process has no key store (LEADPIPE_KEYSTORE_URL)",
            field="value",
            problem="encrypted, no keyring",
        )
    try:
        return ring.open_bytes(value)
    except SubjectErased:
        return None


def shred_item(refs: Iterable[str]) -> list[ErasedItem]:
    """Destroys the keys and returns the receipt line for it (none when shredding is off)."""
    if not shredding_enabled():
        return []
    return [ErasedItem(store="keystore:pkey", action="data keys destroyed", count=destroy_keys(refs))]


def shredded_remaining(shredded: list[ErasedItem]) -> list[str]:
    """What a receipt leaves to retention once the person's keys are destroyed."""
    if not shredded:
        return []
    return ["topics and DLQs: the person's records stay as ciphertext under destroyed keys until retention"]
