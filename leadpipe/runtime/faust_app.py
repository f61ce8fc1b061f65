"""A Faust app configured for our topics: raw bytes in and out (our own pydantic codec),
the session timeout of ``ServiceSettings``, acks=all, an idempotent producer, the fetch wait of
``KAFKA_FETCH_MAX_WAIT_MS`` (one setting for every consumer; Faust fixes 1500 ms), and a
commit rule that never skips a message still in flight (faust-streaming#606)."""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from leadpipe.runtime.metrics import ReadyCheck
from leadpipe.runtime.settings import ServiceSettings


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed fetch_max_wait_ms=1500; aiokafka reads this at start(). Apps with
        # changelog tables keep Faust's value (table recovery was only ever tested with it).
        if not self.app.tables.changelog_topics:
            consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: TP) -> int | None:
        # faust-streaming#606: with agent concurrency > 1 Faust commits over a message still
        # being processed when it sits right at the committed offset (its head-gap check is off
        # by one), and a crash then loses it (found by the chaos suite: a notification request
        # never sent, its ledger entry stuck at "sending"). The committed offset is the next
        # one to process: nothing may be committed until that one is acked (or a known gap).
        # Apps with changelog tables keep Faust's own rule: table recovery was not shown to work
        # with this one (the table-recovery contract test, already flaky here, did worse).
        if self.app.tables.changelog_topics:
            return super()._new_offset(tp)
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        if committed is not None and acked and min(acked) > committed and not self._gap[tp].overlaps(committed):
            return None
        return super()._new_offset(tp)


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Any:
        # Faust makes its producer idempotent only inside transactions; ours always is (acks=all),
        # unless KAFKA_ENABLE_IDEMPOTENCE=false for a broker that cannot (InitProducerId refused).
        acks = getattr(self.app, "acks", "all")
        idempotent = getattr(self.app, "enable_idempotence", True) and acks == "all"
        return {**super()._settings_extra(), "acks": acks if acks == "all" else int(acks),
                "enable_idempotence": idempotent}  # fmt: skip


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


class App(faust.App):
    """``faust.App`` whose Kafka consumer waits at most ``fetch_max_wait_ms`` per fetch."""

    fetch_max_wait_ms: int = 1500
    enable_idempotence: bool = True
    acks: str = "all"

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


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


def make_app(app_id: str, settings: ServiceSettings, **overrides: Any) -> App:
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
        "topic_partitions": settings.kafka_partitions,
        "topic_replication_factor": settings.kafka_replication_factor,
        "table_standby_replicas": 0,
        "datadir": str(datadir),
        "store": "memory://",
        "web_enabled": False,
    }
    app = App(app_id, **(options | overrides))
    app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
    app.enable_idempotence = settings.kafka_enable_idempotence
    app.acks = settings.kafka_acks
    return app
