"""A Faust app configured for our topics: raw bytes in and out (our own pydantic codec),
the session timeout of ``ServiceSettings``, acks=all, an idempotent producer, the fetch waits of
``KAFKA_FETCH_MAX_WAIT_MS`` and ``KAFKA_FETCH_IDLE_WAIT_MS`` (one setting for every consumer;
Faust fixes 1500 ms), and a
commit rule that never skips a message still in flight (faust-streaming#606), and metadata
refreshed every ``KAFKA_METADATA_MAX_AGE_MS`` so a moved partition leader is found in seconds.
The overrides of Faust's internals live in ``faust_compat``."""

from __future__ import annotations

from typing import Any

import faust

from leadpipe.runtime.faust_compat import QuietMonitor, Transport, _Consumer, check_versions
from leadpipe.runtime.kafka import fetch_routine_poll_ms
from leadpipe.runtime.metrics import ReadyCheck
from leadpipe.runtime.settings import ServiceSettings


class App(faust.App):
    """``faust.App`` whose Kafka consumer waits at most ``fetch_max_wait_ms`` per fetch."""

    fetch_max_wait_ms: int = 1500
    fetch_idle_wait_ms: int = 1500
    fetch_sessions: bool = True
    fetch_routine_poll_ms: int = 200
    enable_idempotence: bool = True
    acks: str = "all"
    delivery_stall_s: float = 30.0
    consumer_in_loop: bool = True
    #: ``(topic, partition)`` -> counts ``leadpipe_consumer_partition_restarts_total`` (ops task).
    delivery_restarts: Any = None

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


def consumer_ready(app: faust.App) -> bool:
    """True once the worker's consumer has partitions assigned and no rebalance is under way:
    a worker still waiting for its group is alive but not ready."""
    if app.rebalancing:
        return False
    try:
        return bool(app.consumer.assignment())
    except Exception:  # consumer not started yet
        return False


def with_assignment(app: faust.App, ready: ReadyCheck) -> ReadyCheck:
    """``ready`` plus ``kafka_assigned``: the check a worker's ``/readyz`` answers."""

    async def check() -> dict[str, bool]:
        return await ready() | {"kafka_assigned": consumer_ready(app)}

    return check


__all__ = ["App", "_Consumer", "consumer_ready", "make_app", "with_assignment"]


def make_app(app_id: str, settings: ServiceSettings, **overrides: Any) -> App:
    check_versions()
    datadir = settings.leadpipe_state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")],
        "key_serializer": "raw",
        "value_serializer": "raw",
        "broker_rebalance_timeout": settings.kafka_rebalance_timeout_s,
        "broker_session_timeout": settings.kafka_session_timeout_s,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_s,
        "broker_max_poll_interval": max(settings.kafka_rebalance_timeout_s, 10.0),
        "broker_commit_interval": 1.0,
        "producer_acks": -1 if settings.kafka_acks == "all" else int(settings.kafka_acks),
        "consumer_auto_offset_reset": "earliest",
        # After a broker rejoins, clients that cached the old leaders get NotLeaderForPartition
        # until their metadata refreshes: aiokafka's default age is 5 min (it was minutes here).
        "consumer_metadata_max_age_ms": settings.kafka_metadata_max_age_ms,
        "producer_metadata_max_age_ms": settings.kafka_metadata_max_age_ms,
        "topic_partitions": settings.kafka_partitions,
        "topic_replication_factor": settings.kafka_replication_factor,
        "table_standby_replicas": 0,
        "datadir": str(datadir),
        "store": "memory://",
        "web_enabled": False,
        "Monitor": QuietMonitor,
    }
    app = App(app_id, **(options | overrides))
    app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
    app.fetch_idle_wait_ms = settings.kafka_fetch_idle_wait_ms
    app.fetch_sessions = settings.kafka_fetch_sessions
    app.fetch_routine_poll_ms = fetch_routine_poll_ms(settings)
    app.enable_idempotence = settings.kafka_enable_idempotence
    app.acks = settings.kafka_acks
    app.delivery_stall_s = settings.kafka_delivery_stall_s
    app.consumer_in_loop = settings.kafka_consumer_in_loop
    return app
