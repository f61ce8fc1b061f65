"""A Faust app configured for our topics: raw bytes in and out (our own pydantic codec),
short rebalance timeouts for the embedded broker, acks=all, no idempotent producer."""

from __future__ import annotations

from typing import Any

import faust

from leadpipe.runtime.settings import ServiceSettings


def make_app(app_id: str, settings: ServiceSettings, **overrides: Any) -> faust.App:
    datadir = settings.leadpipe_state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")],
        "key_serializer": "raw",
        "value_serializer": "raw",
        # Tansu stalls for minutes on the first join with the default 300 s rebalance timeout.
        "broker_rebalance_timeout": settings.kafka_rebalance_timeout_s,
        "broker_session_timeout": settings.kafka_session_timeout_s,
        "broker_heartbeat_interval": 1.0,
        "broker_max_poll_interval": max(settings.kafka_rebalance_timeout_s, 10.0),
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": settings.kafka_partitions,
        "topic_replication_factor": settings.kafka_replication_factor,
        "table_standby_replicas": 0,
        "datadir": str(datadir),
        "store": "memory://",
        "web_enabled": False,
    }
    return faust.App(app_id, **(options | overrides))
