"""The settings every service has; each service's ``config.py`` subclasses this."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Infrastructure addresses come from the environment (no defaults: the embedded dev stack
    or the deployment supplies them)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = Field(description="host:port[,host:port], e.g. 127.0.0.1:9092")
    redis_url: str = Field(description="redis://host:port/db")
    leadpipe_state_dir: Path = Field(default=Path(".leadpipe"))
    # The embedded broker rejects InitProducerId, so idempotence is opt-in for real Kafka.
    kafka_enable_idempotence: bool = False
    # Tansu stalls for minutes on the first group join with the clients' 300 s default.
    kafka_rebalance_timeout_s: float = 10.0
    kafka_session_timeout_s: float = 10.0
    kafka_max_record_bytes: int = 1_000_000
    # A caught-up consumer's longest fetch wait. Tansu answers a fetch only when this runs out
    # (a record waits about half of it per hop); Kafka answers as soon as a record arrives.
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=1, le=30_000)
    kafka_partitions: int = 6
    kafka_replication_factor: int = 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
