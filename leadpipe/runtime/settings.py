"""The settings every service has; each service's ``config.py`` subclasses this."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Infrastructure addresses come from the environment (no defaults: the embedded dev stack
    or the deployment supplies them)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = Field(description="host:port[,host:port], e.g. 127.0.0.1:9092")
    redis_url: str = Field(description="redis://host:port/db")
    leadpipe_state_dir: Path = Field(default=Path(".leadpipe"))
    # Idempotent producers (acks=all): a retried send after a lost ack is not written twice.
    kafka_enable_idempotence: bool = True
    # acks=all: a record is acknowledged once every in-sync replica has it. Anything weaker can
    # lose records Kafka acknowledged (and so leads ingest answered 202 for) when a leader dies;
    # the setting exists so the chaos suite can show that (tests/chaos: leader_cut_off).
    kafka_acks: Literal["all", "1", "0"] = "all"
    # How long a crashed worker's partitions wait before moving to a live one: the session
    # timeout. Kafka's client default is 45 s; 10 s moves them sooner (the chaos suite's kill -9
    # of a worker recovers in about 12 s instead of about 47 s) at the price of a rebalance when a
    # worker stalls for 10 s. Production: 30 s (docs/operations.md).
    kafka_rebalance_timeout_s: float = 10.0
    kafka_session_timeout_s: float = 10.0
    kafka_max_record_bytes: int = 1_000_000
    # A caught-up consumer's longest fetch wait. Kafka answers a fetch as soon as a record
    # arrives, so this costs no latency; a shorter wait only adds idle fetches (idle CPU).
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=30_000)
    # How old the clients' cluster metadata (partition leaders) may get before it is refreshed.
    # aiokafka's default is 5 minutes: after a broker rejoined, a client that kept the old leader
    # (and was not told NotLeaderForPartition on the path it uses) stayed stuck for minutes. A
    # refresh is one small request per client: every 5 s costs nothing measurable.
    kafka_metadata_max_age_ms: int = Field(default=5_000, ge=500, le=300_000)
    kafka_partitions: int = 6
    # How long a consumer keeps retrying an event that refers to something it has not seen yet
    # (``stream.NotYet``: nurture's outcome before its lead's state) before dead-lettering it.
    consumer_park_for_s: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    kafka_replication_factor: int = 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # Keys the one-way hashes an erased person is remembered by (docs/privacy.md). Shared by
    # every service and the privacy CLI; a deployment must set its own and never rotate it
    # without re-hashing the suppression list.
    leadpipe_privacy_secret: str = "dev-privacy-secret"
    log_level: str = "INFO"
    log_json: bool = True
