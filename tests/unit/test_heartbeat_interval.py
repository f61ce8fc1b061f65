"""KAFKA_HEARTBEAT_INTERVAL_S reaches the Faust worker's consumer and the plain ones; a bad value is
refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.kafka import make_consumer
from leadpipe.runtime.settings import ServiceSettings


def _settings(tmp_path: Path, **extra: object) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused", leadpipe_state_dir=tmp_path, **extra
    )


def test_the_faust_worker_heartbeats_at_the_configured_interval(tmp_path: Path) -> None:
    default = _settings(tmp_path)
    assert default.kafka_heartbeat_interval_s == 3.0
    assert default.kafka_heartbeat_interval_s <= default.kafka_session_timeout_s / 3
    app = make_app("heartbeat-test", _settings(tmp_path, kafka_heartbeat_interval_s=1.5))
    assert app.conf.broker_heartbeat_interval == 1.5


async def test_plain_consumers_heartbeat_at_the_configured_interval(tmp_path: Path) -> None:
    consumer = make_consumer(_settings(tmp_path, kafka_heartbeat_interval_s=2.5), "t", group_id="g")
    assert consumer._heartbeat_interval_ms == 2500
    await consumer.stop()


def test_a_heartbeat_interval_of_zero_is_refused_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KAFKA_HEARTBEAT_INTERVAL_S", "0")
    with pytest.raises(ValidationError, match="kafka_heartbeat_interval_s"):
        _settings(tmp_path)


async def test_the_console_heartbeats_every_3_s_unless_configured() -> None:
    from services.console.config import ConsoleSettings

    def console(**extra: object) -> ConsoleSettings:
        return ConsoleSettings(
            kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused", database_url="d", **extra
        )

    settings = console()
    assert settings.kafka_heartbeat_interval_s == 3.0
    assert settings.kafka_heartbeat_interval_s <= settings.kafka_session_timeout_s / 3
    consumer = make_consumer(settings, "t", group_id="g")
    assert consumer._heartbeat_interval_ms == 3000
    await consumer.stop()
    assert console(kafka_heartbeat_interval_s=1.0).kafka_heartbeat_interval_s == 1.0
    with pytest.raises(ValidationError, match="kafka_heartbeat_interval_s"):
        console(kafka_heartbeat_interval_s=0)
