"""Builds the scoring service once: settings -> adapters -> handlers (cosmicpython's bootstrap).

``worker.py`` only declares the agents; everything they run is made here, inside the running
loop (``ConsumerService.start``): the Redis stores, the state topic and its rebuild guard, the
model and reference data, and the two handlers (``ScoringBatch`` for the inputs, ``Eraser``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from leadpipe.runtime.rebuild import RebuildGuard
from leadpipe.runtime.service import ConsumerService, started
from leadpipe.runtime.stream import BatchProcessor
from schemas.base import Payload
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_scored.v1 import LeadScored
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.scoring.adapters.metrics import MetricsObserver, ScoringMetrics
from services.scoring.adapters.redis_store import RedisLeadStore
from services.scoring.adapters.reference_files import ModelCatalog, load_model, load_reference
from services.scoring.adapters.state_log import StateLog, ensure_state_topic, rebuild
from services.scoring.config import ScoringSettings
from services.scoring.handlers import Eraser, Scorer, ScoringBatch

log = logging.getLogger(__name__)

#: What the scoring agent consumes, in the order of ``SCORING_INPUT_TOPICS``.
INPUTS: tuple[type[Payload], ...] = (LeadCaptured, LeadEngagement)


def input_topics(settings: ScoringSettings) -> dict[str, type[Payload]]:
    """Topic name -> payload model: the catalog's topics unless ``SCORING_INPUT_TOPICS`` renames them."""
    names = [t.strip() for t in settings.scoring_input_topics.split(",") if t.strip()]
    return {name: payload for name, payload in zip(names, INPUTS, strict=True)}


def erasure_topic(settings: ScoringSettings) -> str:
    return settings.scoring_erasure_topic or PersonErasureRequested.topic()


class Scoring(ConsumerService):
    service = "scoring"
    # One flush carries a whole batch's outputs.
    producer_options: ClassVar[dict[str, Any]] = {"max_batch_size": 256 * 1024}

    def __init__(self, settings: ScoringSettings, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.metrics = ScoringMetrics(self.registry)
        super().__init__(settings, self.metrics.stage)
        self.config = settings
        self._batches: BatchProcessor | None = None
        self._eraser: Eraser | None = None
        self.guard: RebuildGuard | None = None

    def topic_for(self, name: str) -> str:
        return self.config.scoring_output_topic if name == LeadScored.topic() else name

    @property
    def batches(self) -> BatchProcessor:
        return started(self._batches)

    @property
    def eraser(self) -> Eraser:
        return started(self._eraser)

    async def build(self) -> None:
        s = self.config
        model = load_model(s.scoring_model_path)
        ref = load_reference(s.scoring_data_dir, s.scoring_served_area_path)
        log.info("scoring model %s loaded (%d rules)", model.version, len(model.rules))
        store = RedisLeadStore(self.redis, s.scoring_redis_prefix)
        state_log = StateLog(self.producer, s.scoring_state_topic)
        await ensure_state_topic(s, s.scoring_state_topic)

        async def rebuild_once() -> bool:
            token = uuid.uuid4().hex
            if not await store.begin_rebuild(token):
                return False  # another replica is rebuilding: the guard waits for its marker
            await rebuild(s, s.scoring_state_topic, store, state_log)
            return await store.mark_built(token)

        self.guard = RebuildGuard(service=self.service, source=s.scoring_state_topic, is_built=store.is_built,
                                  rebuild=rebuild_once, on_rebuilt=self.metrics.rebuilds.inc)  # fmt: skip
        await self.guard.ensure_built()
        handler = ScoringBatch(
            scorer=Scorer(model, ref, MetricsObserver(self.metrics)), store=store, state_log=state_log,
            publisher=self.publisher, ensure_built=self.guard.ensure_built, models=ModelCatalog(s.scoring_models_dir).get,
        )  # fmt: skip
        self._batches = BatchProcessor(self.events, handler, input_topics(s), retry="batch",
                                       on_conflict=self.metrics.conflicts.inc)  # fmt: skip
        # Its own store: a store's watched pipeline belongs to one caller at a time.
        self._eraser = Eraser(RedisLeadStore(self.redis, s.scoring_redis_prefix), state_log, self.publisher,
                              erased_leads=self.metrics.erased_leads)  # fmt: skip
