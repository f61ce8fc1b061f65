"""KAFKA_FETCH_MAX_WAIT_MS and KAFKA_FETCH_IDLE_WAIT_MS reach the consumers (and KAFKA_LINGER_MS the producers): Faust's worker consumer (which Faust builds
with a fixed 1500 ms) and the plain aiokafka ones; out-of-range values are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import ValidationError

from leadpipe.runtime.aiokafka_compat import FETCH_CONNECTIONS, _FetchesApart, drop_fetch_connection
from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.kafka import make_consumer, make_producer
from leadpipe.runtime.settings import ServiceSettings


def _settings(tmp_path: Path, **extra: object) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused", leadpipe_state_dir=tmp_path, **extra
    )


async def test_the_faust_worker_consumer_waits_at_most_the_configured_fetch_wait(tmp_path: Path):
    app = make_app("fetch-wait-test", _settings(tmp_path, kafka_fetch_max_wait_ms=40))
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 40
    # The fetch routine's own poll is no faster than the longest fetch wait, and a caught-up
    # consumer long-polls (tests/integration/test_fetch_long_poll.py shows what that does).
    assert consumer._consumer_timeout == 10.0  # KAFKA_FETCH_IDLE_WAIT_MS
    assert "long_poll_when_caught_up" in consumer.start.__qualname__
    assert consumer._group_id == "fetch-wait-test"  # still Faust's own settings otherwise
    await consumer.stop()


async def test_an_app_with_a_changelog_table_keeps_fausts_fetch_wait(tmp_path: Path):
    app = make_app("fetch-wait-table", _settings(tmp_path, kafka_fetch_max_wait_ms=40))
    app.Table("counts", default=int, partitions=1)
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 1500
    assert "long_poll_when_caught_up" not in consumer.start.__qualname__
    await consumer.stop()
    thread.thread_loop.close()  # Faust's own consumer thread (an app with tables), never started


async def test_the_default_fetch_wait_is_kafkas_and_plain_consumers_use_it_too(tmp_path: Path):
    settings = _settings(tmp_path)
    assert settings.kafka_fetch_max_wait_ms == 500
    consumer = make_consumer(settings, "t", group_id=None)
    assert consumer._fetch_max_wait_ms == 500
    assert consumer._consumer_timeout == 10.0  # KAFKA_FETCH_IDLE_WAIT_MS
    assert "long_poll_when_caught_up" in consumer.start.__qualname__
    await consumer.stop()


def test_an_idle_fetch_wait_out_of_range_is_refused_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KAFKA_FETCH_IDLE_WAIT_MS", "60000")
    with pytest.raises(ValidationError, match="kafka_fetch_idle_wait_ms"):
        _settings(tmp_path)


def test_a_fetch_wait_out_of_range_is_refused_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "0")
    with pytest.raises(ValidationError, match="kafka_fetch_max_wait_ms"):
        _settings(tmp_path)


async def test_kafka_linger_ms_reaches_the_producers_and_a_negative_one_is_refused_by_name(tmp_path: Path):
    producer = make_producer(_settings(tmp_path, kafka_linger_ms=7))
    assert producer._message_accumulator._linger_time == 0.007
    assert make_producer(_settings(tmp_path))._message_accumulator._linger_time == 0  # the default: none
    with pytest.raises(ValidationError, match="kafka_linger_ms"):
        _settings(tmp_path, kafka_linger_ms=-1)


class _Client:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, int]] = []
        self._conns: dict[tuple[int, int], object] = {}
        self.cluster = object()

    async def send(self, node_id: int, request: object, *, group: int = ConnectionGroup.DEFAULT) -> str:
        self.sent.append((node_id, type(request).__name__, group))
        return "answer"


async def test_the_fetcher_sends_fetches_on_their_own_connection_and_everything_else_as_before() -> None:
    client = _Client()
    seen = _FetchesApart(client)
    fetch = FetchRequest(10_000, 1, 1024, 0, [("t", [(0, 0, 1024)])])
    assert await seen.send(1, fetch) == "answer"
    assert await seen.send(1, MetadataRequest([])) == "answer"
    await seen.send(2, OffsetFetchRequest("g", []), group=ConnectionGroup.COORDINATION)
    assert client.sent == [
        (1, "FetchRequest", FETCH_CONNECTIONS),
        (1, "MetadataRequest", ConnectionGroup.DEFAULT),
        (2, "OffsetFetchRequest", ConnectionGroup.COORDINATION),
    ]
    assert seen._conns is client._conns  # everything else is the client's own


def test_dropping_the_fetch_connection_closes_it_and_leaves_the_others_open() -> None:
    class Conn:
        def __init__(self) -> None:
            self.closed_for: object = None

        def connected(self) -> bool:
            return self.closed_for is None

        def close(self, reason: object = None) -> None:
            self.closed_for = reason

    client = _Client()
    fetching, default = Conn(), Conn()
    client._conns = {(1, FETCH_CONNECTIONS): fetching, (1, ConnectionGroup.DEFAULT): default}
    drop_fetch_connection(client, 1)
    assert fetching.closed_for is CloseReason.IDLE_DROP and default.connected()
    drop_fetch_connection(client, 2)  # no fetch connection to that broker: nothing to do
