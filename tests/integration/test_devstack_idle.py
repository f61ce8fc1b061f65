"""The dev stack's Redis and PostgreSQL run with idle-friendly timers (issue #13: an idle stack's
CPU), and what those timers could have changed still holds: a key past its TTL is gone when read,
whatever Redis's ``hz``.

These are the suite's own servers (tests/infra.py starts them with the dev stack's functions);
with ``LEADPIPE_TEST_REDIS`` / ``LEADPIPE_TEST_DATABASE_URL`` set they are someone else's, and the
settings checks are skipped."""

from __future__ import annotations

import os
import time

import psycopg
import pytest
import redis

from leadpipe.devstack.processes import POSTGRES_IDLE_SETTINGS, REDIS_IDLE_ARGS

own_redis = pytest.mark.skipif(bool(os.environ.get("LEADPIPE_TEST_REDIS")), reason="an external Redis")
own_postgres = pytest.mark.skipif(bool(os.environ.get("LEADPIPE_TEST_DATABASE_URL")), reason="an external PostgreSQL")


@own_redis
def test_the_dev_redis_runs_its_cron_once_a_second(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        wanted = dict(zip(REDIS_IDLE_ARGS[::2], REDIS_IDLE_ARGS[1::2], strict=True))
        assert wanted == {"--hz": "1", "--dynamic-hz": "yes"}
        assert client.config_get("hz") == {"hz": "1"}
        assert client.config_get("dynamic-hz") == {"dynamic-hz": "yes"}
        assert client.config_get("timeout") == {"timeout": "0"}  # no idle-client timeout for the cron to check
    finally:
        client.close()


def test_a_key_past_its_ttl_is_gone_when_read_though_the_cron_has_not_run(redis_url: str, unique: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key, lease = f"idle-{unique}:value", f"idle-{unique}:lease"
    try:
        client.set(key, b"v", px=50)
        assert client.set(lease, b"holder-1", nx=True, px=50)
        assert not client.set(lease, b"holder-2", nx=True, px=50)  # still held
        time.sleep(0.12)  # well under the one-second cron: only the read's own expiry can remove them
        assert client.get(key) is None
        assert client.exists(key) == 0
        assert client.set(lease, b"holder-2", nx=True, px=1000)  # an expired lease is free at once
        assert client.get(lease) == b"holder-2"
    finally:
        client.delete(key, lease)
        client.close()


@own_postgres
def test_the_dev_postgres_background_timers_are_slowed_for_an_idle_read_model(postgres_server: str) -> None:
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in POSTGRES_IDLE_SETTINGS}  # type: ignore[index]
    assert shown == {"bgwriter_delay": "10s", "wal_writer_delay": "10s", "autovacuum_naptime": "5min"}
