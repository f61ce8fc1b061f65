"""Nurture's state keys (crypto-shredding) are read ahead of the synchronous codec: the leads a
tick fires have states, so their keys are read in one round trip and never created."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from schemas.pii import Keyring, lead_ref, new_key, use_keyring
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.domain.engine import Nurture
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.routing import parse_directory
from services.nurture.handlers import Links, NurtureHandler
from tests.integration.nurture.harness import scored, write_config
from tests.integration.nurture.test_store import ListLog, ListPublisher
from tests.unit.test_crypto_shredding import SECRET, MemoryKeyStore
from tests.unit.test_keystore_prefetch import CountingAsyncStore


async def test_a_tick_reads_the_state_keys_of_the_leads_it_fires_in_one_round_trip_and_creates_none(
    redis_url: str, tmp_path: Path
):
    books, directory = write_config(tmp_path, capacity=5, reps=1)
    engine = Nurture(parse_playbooks(yaml.safe_load(books.read_text())),
                     parse_directory(yaml.safe_load(directory.read_text())))  # fmt: skip
    redis = Redis.from_url(redis_url)
    h = NurtureHandler(engine, RedisNurtureStore(redis, f"nurture:{uuid.uuid4().hex[:8]}:"), ListPublisher(), ListLog(),
                       NurtureMetrics(CollectorRegistry()), Links("s", "http://x", 60),
                       clock=lambda: datetime(2026, 5, 4, 10, 0, tzinfo=UTC))  # fmt: skip
    store = MemoryKeyStore()
    fast = CountingAsyncStore(store)
    keys = Keyring(store, SECRET, prefetch_store=fast)
    store.keys[keys.kid(lead_ref("ld_1"))] = new_key()  # its state was sealed under it
    try:
        for lead in ("ld_1", "ld_2"):
            await h.handle(scored(lead))
        previous = use_keyring(keys)
        try:
            h.clock = lambda: datetime(2026, 6, 1, tzinfo=UTC)
            assert await h.tick(lease_s=5, limit=10) == 2  # a month on: both have something due
        finally:
            use_keyring(previous)
        assert len(fast.calls) == 1
        kids, created = fast.calls[0]
        assert sorted(kids) == sorted(keys.kid(lead_ref(lid)) for lid in ("ld_1", "ld_2")) and created == []
        assert keys.kid(lead_ref("ld_2")) not in store.keys  # read, not created
    finally:
        await redis.aclose()
