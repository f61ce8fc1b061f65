"""``Stack.restart_redis``, the chaos suite's Redis fault, on a real redis-server: a wiped restart
empties the services' database and keeps the data-key store (database 1). Wiping the key store
too made every record sealed before the fault unreadable, as if everyone had been erased: the
long chaos run's audit failed on that, not on the pipeline."""

from __future__ import annotations

from pathlib import Path

import redis

from leadpipe.devstack.stack import Stack, keystore_url


def test_a_wiped_restart_empties_the_services_database_and_keeps_the_key_store(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    stack = Stack(tmp_path / "stack", services=[], bootstrap=kafka_bootstrap)
    try:
        stack.start_infra()
        services, keys = redis.Redis.from_url(stack.redis_url), redis.Redis.from_url(keystore_url(stack.redis_url))
        services.set("nurture:meta:built", "1")
        keys.set("leadpipe:key:abc", "a data key")

        stack.restart_redis(wipe=True)
        assert services.dbsize() == 0  # the services rebuild from the topics
        assert keys.get("leadpipe:key:abc") == b"a data key"

        services.set("nurture:meta:built", "1")
        stack.restart_redis()  # from its append-only file: both kept
        assert services.get("nurture:meta:built") == b"1" and keys.dbsize() == 1
        services.close()
        keys.close()
    finally:
        stack.stop()
