"""Records in -> facts -> read model; and rep actions in -> events out."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import Channel, EngagementKind, Payload
from schemas.codec import decode
from schemas.envelope import Envelope, new_event
from schemas.errors import SchemaError
from schemas.identity import identity_key
from schemas.lead_captured.v1 import Identity
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from services.console.adapters.metrics import ConsoleMetrics
from services.console.domain.facts import PROJECTED, to_fact
from services.console.domain.projection import ENGAGEMENT_OUTCOMES, VERDICTS, Fact, LeadRow

log = logging.getLogger(__name__)
SOURCE = "leadpipe/console"

#: The topics the projector reads.
TOPICS = tuple(f"{t}.v1" for t in PROJECTED)


class RawRecord(Protocol):
    topic: str
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Store(Protocol):
    """Where facts are projected (PostgreSQL in production, a fake in tests)."""

    async def project(self, facts: Sequence[Fact]) -> int: ...


Publish = Callable[[Envelope[Any]], Awaitable[None]]


class Projector:
    """Decodes a batch of records and projects them in one transaction. A record that is not a
    valid event is counted, logged with its topic and offset, and skipped: the console is a read
    model, the producing service's dead-letter topic is where a bad record is dealt with."""

    def __init__(self, store: Store, metrics: ConsoleMetrics) -> None:
        self.store = store
        self.metrics = metrics

    async def handle(self, records: Sequence[RawRecord]) -> int:
        started = time.perf_counter()
        facts: list[Fact] = []
        for record in records:
            try:
                event = decode(record.value, record.headers)
            except SchemaError as exc:
                self.metrics.undecodable.labels(record.topic).inc()
                log.warning("skipping an undecodable record on %s: %s", record.topic, exc)
                continue
            facts.append(to_fact(event.data.EVENT_TYPE, event.id, event.time, event.data.model_dump(mode="json")))
        new = await self.store.project(facts) if facts else 0
        for fact in facts:
            self.metrics.projected.labels(fact.type).inc()
        self.metrics.duplicates.inc(len(facts) - new)
        if facts:
            self.metrics.lag.set(max(0.0, time.time() - max(f.time for f in facts).timestamp()))
        self.metrics.batch.observe(time.perf_counter() - started)
        return new


def assignment_response(
    lead: LeadRow, rep_id: str, accept: bool, now: datetime, note: str | None = None
) -> Envelope[Any]:
    """The rep's answer, as ingest's signed links publish it."""
    payload = AssignmentResponse(
        assignment_id=lead.assignment_id or "",
        lead_id=lead.lead_id,
        rep_id=rep_id,
        response="accepted" if accept else "declined",
        responded_at=now,
        note=note or None,
    )
    return _event(payload, lead.lead_id)


def outcome_event(lead: LeadRow, rep_id: str, outcome: str, now: datetime, note: str | None = None) -> Envelope[Any]:
    """A logged outcome as the event nurture acts on: an engagement when one carries it, else
    ``lead.outcome_logged`` (see ``ENGAGEMENT_OUTCOMES`` and ``VERDICTS``)."""
    if outcome in VERDICTS:
        verdict = LeadOutcomeLogged(
            outcome_id=f"console-{uuid.uuid4()}",
            lead_id=lead.lead_id,
            rep_id=rep_id,
            outcome=outcome,
            logged_at=now,
            note=note or None,
        )
        return _event(verdict, lead.lead_id)
    kind = ENGAGEMENT_OUTCOMES.get(outcome)
    if kind is None:
        raise ValueError(f"outcome {outcome!r}: choose one of {', '.join((*ENGAGEMENT_OUTCOMES, *VERDICTS))}")
    if not (lead.email or lead.phone):
        raise ValueError("the lead has no email or phone to identify it by")
    detail = f"{outcome.replace('_', ' ')} logged in the console by {rep_id}" + (f": {note}" if note else "")
    payload = LeadEngagement(
        engagement_id=f"console-{uuid.uuid4()}",
        kind=EngagementKind(kind),
        occurred_at=now,
        identity=Identity(email=lead.email, phone=lead.phone),
        channel=Channel.PHONE,
        provider="console",
        detail=detail[:2000],
    )
    return _event(payload, identity_key(email=lead.email, phone=lead.phone))


def _event(payload: Payload, subject: str) -> Envelope[Any]:
    return new_event(payload, source=SOURCE, subject=subject, time=datetime.now(UTC))
