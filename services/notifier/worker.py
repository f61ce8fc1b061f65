"""The notifier worker: notification requests (and their retries) -> provider -> outcomes, the
engagement stream for the suppression list, erasure requests; plus the ops endpoints.

Declarations only (``bootstrap.py`` builds the parts; ``leadpipe.runtime`` runs them): four
agents, each record through the runtime's error policy with one of ``handlers.Notifier``'s
entry points; new requests in batches (``handlers.RequestBatch``: concurrently, offsets
acknowledged per batch), retries one by one as they fall due.
"""

from __future__ import annotations

import asyncio
import functools
import time

import faust
from prometheus_client import CollectorRegistry

from leadpipe.runtime.agents import batch_agent, lifecycle, ops_task, record_agent
from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.stream import RawMessage
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.notification_requested.v1 import NotificationRequested
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.notifier.bootstrap import NotifierService
from services.notifier.config import NotifierSettings
from services.notifier.handlers import due_at


async def _until_due(msg: RawMessage) -> None:
    # Waiting here holds only the retry partition; new requests keep flowing.
    wait = due_at(msg) - time.time()
    if wait > 0:
        await asyncio.sleep(wait)


def build_app(settings: NotifierSettings, registry: CollectorRegistry | None = None) -> faust.App:
    s = settings
    app = make_app(s.notifier_app_id, s, broker_commit_interval=s.notifier_commit_interval_s)
    svc = NotifierService(s, registry)
    lifecycle(app, svc)
    batch_agent(app, [s.notifier_requested_topic], name="on_requested", service=svc, batches=lambda: svc.requests,
                max_records=s.notifier_batch_max, within_s=s.notifier_batch_within_s)  # fmt: skip
    record_agent(app, s.notifier_retry_topic, name="on_retry", service=svc, expected=NotificationRequested,
                 concurrency=s.notifier_concurrency, before=_until_due,
                 handler=lambda: lambda msg: functools.partial(svc.notifier.on_retry, msg=msg))  # fmt: skip
    record_agent(app, s.notifier_engagement_topic, name="on_engagement", service=svc, expected=LeadEngagement,
                 handler=lambda: lambda _: svc.notifier.on_engagement)  # fmt: skip
    record_agent(app, s.notifier_erasure_topic, name="on_erasure", service=svc, expected=PersonErasureRequested,
                 handler=lambda: lambda _: svc.notifier.on_erasure)  # fmt: skip
    ops_task(app, svc, svc.registry, s.ops_host, s.ops_port)
    return app
