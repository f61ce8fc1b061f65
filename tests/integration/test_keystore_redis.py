"""The data-key store on a real Redis: get-or-create is one atomic round trip (a script), and the
asyncio client reads a batch's keys (MGET) and creates new ones (the script, pipelined) in one."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest
import redis

from leadpipe.devstack.processes import free_port
from leadpipe.runtime.keystore import GET_OR_CREATE, KeyStoreUnavailable, RedisKeyStore
from schemas import decode_record, encode
from schemas.pii import Keyring, person_ref
from tests.unit.test_crypto_shredding import by_type


@pytest.fixture
async def store(redis_url: str, unique: str) -> AsyncIterator[RedisKeyStore]:
    url = redis_url.rsplit("/", 1)[0] + "/1"
    s = RedisKeyStore(redis.Redis.from_url(url), prefix=f"pkey-{unique}:", url=url)
    yield s
    await s.aclose()
    s.redis.close()


def calls(client: redis.Redis[bytes], command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_get_or_create_is_one_round_trip_and_returns_the_same_key_every_time(store: RedisKeyStore):
    store.redis.script_load(GET_OR_CREATE)
    before = {c: calls(store.redis, c) for c in ("evalsha", "set", "get")}
    first = store.get_or_create("k1")
    assert {c: calls(store.redis, c) - n for c, n in before.items()} == {"evalsha": 1, "set": 1, "get": 1}
    assert store.get_or_create("k1") == first == store.get("k1")


def test_processes_racing_to_create_one_key_all_get_the_same_key(store: RedisKeyStore):
    clients = [RedisKeyStore(redis.Redis.from_url(store.url or ""), prefix=store.prefix) for _ in range(8)]
    start, got = threading.Barrier(len(clients)), []

    def create(s: RedisKeyStore) -> None:
        start.wait()
        got.append(s.get_or_create("raced"))

    threads = [threading.Thread(target=create, args=(s,)) for s in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in clients:
        s.redis.close()
    assert len(got) == 8 and len(set(got)) == 1 and store.get("raced") == got[0]


def test_a_key_destroyed_after_it_was_created_is_made_anew_not_brought_back(store: RedisKeyStore):
    old = store.get_or_create("erased")
    assert store.destroy(["erased"]) == 1 and store.get("erased") is None
    new = store.get_or_create("erased")
    assert new != old and new[0] != old[0]


async def test_the_async_client_reads_existing_keys_in_one_mget_and_leaves_missing_ones_out(store: RedisKeyStore):
    a, b = store.get_or_create("a"), store.get_or_create("b")
    before = calls(store.redis, "mget")
    assert await store.fetch(["a", "missing", "b"]) == {"a": a, "b": b}
    assert calls(store.redis, "mget") - before == 1
    assert store.get("missing") is None  # reading never creates


async def test_the_async_client_creates_new_keys_with_the_script_even_after_redis_forgot_it(store: RedisKeyStore):
    a = store.get_or_create("a")
    store.redis.script_flush()  # a restarted Redis: the script is loaded again, once
    found = await store.fetch(["a", "gone"], create=["new1", "new2", "a2"])
    assert found["a"] == a and "gone" not in found
    assert found["new1"] == store.get("new1") and found["new2"] == store.get("new2") and found["a2"] != a
    assert await store.fetch([], create=["new1"]) == {"new1": found["new1"]}  # an existing key is returned


async def test_a_keyring_prefetches_a_batch_from_redis_and_decodes_it_without_a_blocking_read(store: RedisKeyStore):
    writer = Keyring(store, "s")
    event = by_type("lead.captured")
    record = encode(event, keyring=writer)
    keys = Keyring(store, "s", prefetch_store=store)
    gets = calls(store.redis, "get")
    assert await keys.prefetch([record.value]) == 1
    assert decode_record(record, keyring=keys) == event
    assert calls(store.redis, "get") == gets  # the codec found the key in the cache
    assert await keys.prepare([person_ref(event.data)]) == 0  # cached: no round trip


async def test_an_unreachable_store_is_a_key_store_error_for_the_async_client_too():
    url = f"redis://127.0.0.1:{free_port()}/1"
    dead = RedisKeyStore.from_url(url)
    with pytest.raises(KeyStoreUnavailable):
        await dead.fetch(["a"])
    with pytest.raises(KeyStoreUnavailable):
        await dead.fetch([], create=["a"])
    await dead.aclose()
    dead.redis.close()
