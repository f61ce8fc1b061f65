"""Session fixtures: one broker and one Redis for the suite (see tests/infra.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import infra


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def kafka(infra_dir: Path) -> Iterator[infra.Broker]:
    with infra.broker(infra_dir) as b:
        yield b


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: infra.Broker) -> str:
    return kafka.bootstrap


@pytest.fixture(scope="session")
def redis_server(infra_dir: Path) -> Iterator[infra.RedisServer]:
    with infra.redis(infra_dir / "redis") as r:
        yield r


@pytest.fixture(scope="session")
def redis_url(redis_server: infra.RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server(infra_dir: Path) -> Iterator[str]:
    with infra.postgres(infra_dir) as url:
        yield url


@pytest.fixture
def database_url(postgres_server: str, unique: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{unique}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]  # a generated name
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def registry_topics(kafka_bootstrap: str) -> str:
    """The registry's topics exist on the session broker."""
    from leadpipe.runtime.kafka import ensure_topics

    asyncio.run(ensure_topics(kafka_bootstrap))
    return kafka_bootstrap


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names, so tests never share state."""
    return uuid.uuid4().hex[:10]
