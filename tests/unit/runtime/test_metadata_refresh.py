"""Cluster metadata is refreshed every KAFKA_METADATA_MAX_AGE_MS (5 s) by every client: after a
broker rejoins, a consumer or producer that kept the old partition leaders finds the new ones
in seconds (aiokafka's default age is 5 minutes: consumers stayed stuck that long)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.kafka import make_consumer, make_producer
from leadpipe.runtime.settings import ServiceSettings


def _settings(tmp_path: Path, **extra: object) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused", leadpipe_state_dir=tmp_path, **extra
    )


async def test_fausts_worker_consumer_and_producer_refresh_metadata_every_few_seconds(tmp_path: Path):
    app = make_app("metadata-test", _settings(tmp_path))
    assert app.conf.consumer_metadata_max_age_ms == app.conf.producer_metadata_max_age_ms == 5_000
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._client._metadata_max_age_ms == 5_000
    await consumer.stop()
    assert app.producer._settings_default()["metadata_max_age_ms"] == 5_000


async def test_plain_clients_refresh_metadata_at_the_configured_age(tmp_path: Path):
    settings = _settings(tmp_path, kafka_metadata_max_age_ms=2_000)
    consumer = make_consumer(settings, "t", group_id=None)
    producer = make_producer(settings)
    assert consumer._client._metadata_max_age_ms == producer.client._metadata_max_age_ms == 2_000
    await consumer.stop()
    await producer.stop()


def test_a_metadata_age_out_of_range_is_refused_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KAFKA_METADATA_MAX_AGE_MS", "10")
    with pytest.raises(ValidationError, match="kafka_metadata_max_age_ms"):
        _settings(tmp_path)
