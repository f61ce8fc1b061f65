"""The scoring worker: lead.captured + lead.engagement -> lead.scored, and erasure requests.

Declarations only (``bootstrap.py`` builds the parts; ``leadpipe.runtime`` runs them): the
inputs in batches (one Redis round trip and one producer flush per batch, see
``handlers.ScoringBatch``), erasure requests one at a time, and the ops endpoints.
"""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from leadpipe.runtime.agents import batch_agent, lifecycle, ops_task, record_agent
from leadpipe.runtime.faust_app import make_app
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.scoring.bootstrap import Scoring, erasure_topic, input_topics
from services.scoring.config import ScoringSettings


def build_app(settings: ScoringSettings, registry: CollectorRegistry | None = None) -> faust.App:
    app = make_app(settings.scoring_group_id, settings)
    scoring = Scoring(settings, registry)
    lifecycle(app, scoring)
    batch_agent(app, list(input_topics(settings)), name="score", service=scoring, batches=lambda: scoring.batches,
                max_records=settings.scoring_batch_max, within_s=settings.scoring_batch_within_s)  # fmt: skip
    record_agent(app, erasure_topic(settings), name="scoring-erasure", service=scoring,
                 expected=PersonErasureRequested, handler=lambda: lambda _: scoring.eraser.handle)  # fmt: skip
    ops_task(app, scoring, scoring.registry, settings.ops_host, settings.ops_port)
    return app
