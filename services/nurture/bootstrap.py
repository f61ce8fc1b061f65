"""Builds the nurture service once: settings -> engine, adapters, handler (cosmicpython's bootstrap).

``worker.py`` only declares the agents and the scheduler; everything they run is made here,
inside the running loop (``ConsumerService.start``): the playbooks and sales directory, the
Redis store, the state topic with its rebuild guard, the handler and its batch mode.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import yaml
from prometheus_client import CollectorRegistry

from leadpipe.runtime.rebuild import RebuildGuard
from leadpipe.runtime.service import ConsumerService, started
from leadpipe.runtime.stream import BatchProcessor
from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import Payload
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.adapters.state_log import StateLog, ensure_state_topic, rebuild
from services.nurture.config import NurtureSettings
from services.nurture.domain.engine import Nurture
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.routing import parse_directory
from services.nurture.handlers import Links, NurtureBatch, NurtureHandler

log = logging.getLogger(__name__)

#: What the nurture agent consumes (topics from the catalog, with the settings' prefix).
INPUTS: tuple[type[Payload], ...] = (LeadScored, NotificationOutcome, AssignmentResponse, LeadOutcomeLogged)
#: Events referring to a lead not seen yet wait here (``NotYet``), at most this long.
PARK_TOPIC = "nurture.park.v1"


def input_topics(settings: NurtureSettings) -> dict[str, type[Payload]]:
    return {settings.topic(p.topic()): p for p in INPUTS}


def erasure_topic(settings: NurtureSettings) -> str:
    return settings.topic(PersonErasureRequested.topic())


def load_engine(settings: NurtureSettings) -> Nurture:
    """Reads and validates the playbooks and the sales directory (``ConfigError`` names the field)."""
    books = parse_playbooks(yaml.safe_load(settings.nurture_playbooks_path.read_text()))
    if settings.nurture_sla_seconds is not None:
        books = replace(books, policy=replace(books.policy, sla=timedelta(seconds=settings.nurture_sla_seconds)))
    directory = parse_directory(yaml.safe_load(settings.nurture_directory_path.read_text()))
    return Nurture(books, directory)


class NurtureService(ConsumerService):
    service = "nurture"

    def __init__(self, settings: NurtureSettings, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.metrics = NurtureMetrics(self.registry)
        super().__init__(settings, self.metrics.stage)
        self.config = settings
        self._handler: NurtureHandler | None = None
        self._batches: BatchProcessor | None = None
        self.guard: RebuildGuard | None = None

    def topic_for(self, name: str) -> str:
        return self.config.topic(name)

    def park_topic(self) -> str:
        return self.config.topic(PARK_TOPIC)

    @property
    def handler(self) -> NurtureHandler:
        return started(self._handler)

    @property
    def batches(self) -> BatchProcessor:
        return started(self._batches)

    async def ensure_built(self) -> None:
        await started(self.guard).ensure_built()

    def _rebuilt(self) -> None:
        self.metrics.rebuilds.inc()
        if self._handler is not None:  # the rebuilt schedule may hold touches due already
            self._handler.wake.ring()

    async def build(self) -> None:
        s = self.config
        engine = load_engine(s)
        store = RedisNurtureStore(self.redis, s.nurture_redis_prefix)
        state_topic = s.topic(s.nurture_state_topic)
        await ensure_state_topic(s, state_topic)

        async def rebuild_once() -> bool:
            await rebuild(s, state_topic, store, engine.next_due, engine.queue_entry)
            await store.mark_built()
            return True

        self.guard = RebuildGuard(service=self.service, source=state_topic, is_built=store.is_built,
                                  rebuild=rebuild_once, on_rebuilt=self._rebuilt)  # fmt: skip
        await self.guard.ensure_built()
        links = Links(s.leadpipe_link_secret, s.leadpipe_public_url, s.link_ttl_s)
        self._handler = NurtureHandler(engine, store, self.publisher, StateLog(self.producer, state_topic),
                                       self.metrics, links)  # fmt: skip
        self._batches = BatchProcessor(self.events, NurtureBatch(self._handler, self.guard.ensure_built),
                                       input_topics(s), concurrency=s.nurture_batch_concurrency,
                                       seal_refs=NurtureBatch.state_refs)  # fmt: skip
        log.info("nurture started: playbooks %s, directory %s (%d reps)", engine.playbooks.version,
                 engine.directory.version, len(engine.directory.reps))  # fmt: skip
