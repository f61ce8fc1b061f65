"""The data-key store of crypto-shredding (``schemas.pii``) on Redis, and its installation.

Keys live under ``pkey:<kid>`` -> ``<version>:<base64 key>`` in a Redis database of their own
(``LEADPIPE_KEYSTORE_URL``, e.g. ``redis://host:6379/1``), shared by every service and the ops
CLI. It is the one store a service reads outside its own keyspace: the key of a person must be
the same wherever their events are written or read. Destroying a key is ``DEL``: after it no copy
of the person's records (topics, dead-letter topics, the ingest spool) can be read again, unless
a backup of this database brings the key back (docs/privacy.md, backups).

The client is synchronous: the codec is synchronous and is called from many places; a key is
fetched once per person and process (then cached), so the blocking call is rare and short.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import Literal

import redis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class KeyStoreSettings(BaseSettings):
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


class RedisKeyStore:
    """``schemas.pii.KeyStore`` on Redis; a Redis failure is a ``KeyStoreUnavailable``."""

    def __init__(self, client: redis.Redis[bytes], prefix: str = PREFIX):
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> RedisKeyStore:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5))

    @staticmethod
    def _load(raw: bytes | None) -> tuple[str, bytes] | None:
        if raw is None:
            return None
        version, _, key = raw.decode().partition(":")
        return version, base64.b64decode(key)

    def get(self, kid: str) -> tuple[str, bytes] | None:
        try:
            return self._load(self.redis.get(self.prefix + kid))
        except redis.RedisError as exc:
            raise KeyStoreUnavailable(f"key store unreachable: {exc}") from exc

    def get_or_create(self, kid: str) -> tuple[str, bytes]:
        version, key = new_key()
        try:
            self.redis.set(self.prefix + kid, f"{version}:{base64.b64encode(key).decode()}", nx=True)
        except redis.RedisError as exc:
            raise KeyStoreUnavailable(f"key store unreachable: {exc}") from exc
        found = self.get(kid)
        if found is None:  # destroyed between our SET and GET: an erasure won the race
            return self.get_or_create(kid)
        return found

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
    store = RedisKeyStore.from_url(settings.leadpipe_keystore_url)
    return Keyring(store, settings.leadpipe_privacy_secret, cache_ttl_s=settings.leadpipe_keystore_cache_s)


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
