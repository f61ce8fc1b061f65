"""The nurture worker: lead.scored, notification.outcome, assignment.response and
lead.outcome_logged in; stage changes, assignments and notification requests out; plus the
scheduler (``scheduler.py``) that fires due touches and SLA timers and serves the overflow queue.

Declarations only (``bootstrap.py`` builds the parts; ``leadpipe.runtime`` runs them). Records of
one lead share a partition (keyed by lead id): the inputs go in batches, a lead's events in
order and different leads concurrently (``handlers.NurtureBatch``). The scheduler runs in every
replica and claims due leads atomically in Redis.
"""

from __future__ import annotations

import logging

import faust
from prometheus_client import CollectorRegistry

from leadpipe.runtime.agents import batch_agent, lifecycle, ops_task, park_agent, record_agent
from leadpipe.runtime.faust_app import make_app
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.nurture.bootstrap import NurtureService, erasure_topic, input_topics
from services.nurture.config import NurtureSettings
from services.nurture.scheduler import Scheduler

log = logging.getLogger(__name__)


def build_app(settings: NurtureSettings, registry: CollectorRegistry | None = None) -> faust.App:
    app = make_app(settings.nurture_group_id, settings)
    nurture = NurtureService(settings, registry)
    inputs = input_topics(settings)
    lifecycle(app, nurture)
    batch_agent(app, list(inputs), name="nurture", service=nurture, batches=lambda: nurture.batches,
                max_records=settings.nurture_batch_max, within_s=settings.nurture_batch_within_s)  # fmt: skip
    park_agent(app, nurture.park_topic(), name="nurture-parked", service=nurture, expected=inputs,
               handler=lambda: nurture.handler.handle_one)  # fmt: skip
    record_agent(app, erasure_topic(settings), name="nurture-erasure", service=nurture,
                 expected=PersonErasureRequested, handler=lambda: lambda _: nurture.handler.erase)  # fmt: skip
    ops_task(app, nurture, nurture.registry, settings.ops_host, settings.ops_port)

    @app.task  # type: ignore[untyped-decorator]
    async def scheduler() -> None:
        # Due touches and SLA timers do not wait for the consumer group to settle.
        await nurture.start()
        await Scheduler(nurture.handler, nurture.ensure_built, lease_s=settings.nurture_claim_lease_s,
                        batch=settings.nurture_claim_batch, check_s=settings.nurture_check_interval_s).run()  # fmt: skip

    return app
