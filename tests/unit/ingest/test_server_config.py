"""How ingest is served: the C HTTP parser and no access log by default; h11 for comparison."""

from __future__ import annotations

from fastapi import FastAPI

from services.ingest.__main__ import server_config
from services.ingest.config import IngestSettings


def _settings() -> IngestSettings:
    return IngestSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused", ingest_port=18080)


def test_ingest_is_served_with_httptools_and_no_access_log() -> None:
    config = server_config(_settings(), FastAPI())
    assert config.http == "httptools"
    assert config.access_log is False
    assert (config.host, config.port) == ("127.0.0.1", 18080)


def test_the_plain_server_is_h11_for_the_benchmark_comparison() -> None:
    assert server_config(_settings(), FastAPI(), "plain").http == "h11"
