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
from schemas.person_erased.v1 import ErasedItem, PersonErased
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from services.console.adapters.metrics import ConsoleMetrics
from services.console.domain.erasure import identity_hashes
from services.console.domain.facts import PROJECTED, to_fact
from services.console.domain.projection import ENGAGEMENT_OUTCOMES, VERDICTS, Fact, LeadRow

log = logging.getLogger(__name__)
SOURCE = "leadpipe/console"

#: The topics the projector reads: the projected events, and erasure requests.
TOPICS = (*(f"{t}.v1" for t in PROJECTED), PersonErasureRequested.topic())

#: What an erasure leaves to others: the console's copies of these are redacted, not the topics.
REMAINING = ("kafka topics the console reads: left to their retention (docs/privacy.md)",)


class RawRecord(Protocol):
    topic: str
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Store(Protocol):
    """Where facts are projected (PostgreSQL in production, a fake in tests)."""

    async def project(self, facts: Sequence[Fact], hashes: Sequence[frozenset[str]] | None = None) -> int: ...

    async def erase(
        self,
        *,
        request_id: str,
        subject_hash: str,
        requested_at: datetime,
        email: str | None,
        phone: str | None,
        lead_ids: Sequence[str],
        identifier_hashes: Sequence[str],
    ) -> tuple[int, int]: ...


Publish = Callable[[Envelope[Any]], Awaitable[None]]


class Projector:
    """Decodes a batch of records and projects them in one transaction. A record that is not a
    valid event is counted, logged with its topic and offset, and skipped: the console is a read
    model, the producing service's dead-letter topic is where a bad record is dealt with. The
    canary's synthetic events are counted and skipped: its lead is no rep's to work, and no
    manager's number.

    An erasure request is honoured in its place in the batch (the facts before it are projected
    first), in its own transaction; with ``publish`` (the live projector, not a rebuild) the
    console's receipt goes out after it, each time the request is seen (at least once; the
    counts are those of the first time)."""

    def __init__(
        self, store: Store, metrics: ConsoleMetrics, *, privacy_secret: str, publish: Publish | None = None
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.privacy_secret = privacy_secret
        self.publish = publish

    async def handle(self, records: Sequence[RawRecord]) -> int:
        started = time.perf_counter()
        facts: list[Fact] = []
        new = 0
        for record in records:
            try:
                event = decode(record.value, record.headers)
            except SchemaError as exc:
                self.metrics.undecodable.labels(record.topic).inc()
                log.warning("skipping an undecodable record on %s: %s", record.topic, exc)
                continue
            if event.synthetic:  # the canary's traffic: not a lead for any rep's list or any number
                self.metrics.synthetic.inc()
                continue
            if isinstance(event.data, PersonErasureRequested):
                new += await self._project(facts)
                facts = []
                await self.erase(event.data)
                continue
            facts.append(to_fact(event.data.EVENT_TYPE, event.id, event.time, event.data.model_dump(mode="json")))
        new += await self._project(facts)
        self.metrics.batch.observe(time.perf_counter() - started)
        return new

    async def _project(self, facts: list[Fact]) -> int:
        if not facts:
            return 0
        hashes = [identity_hashes(self.privacy_secret, f) for f in facts]
        new = await self.store.project(facts, hashes)
        for fact in facts:
            self.metrics.projected.labels(fact.type).inc()
        self.metrics.duplicates.inc(len(facts) - new)
        self.metrics.lag.set(max(0.0, time.time() - max(f.time for f in facts).timestamp()))
        return new

    async def erase(self, req: PersonErasureRequested) -> None:
        leads, events = await self.store.erase(
            request_id=req.request_id,
            subject_hash=req.subject_hash,
            requested_at=req.requested_at,
            email=req.email,
            phone=req.phone,
            lead_ids=req.lead_ids,
            identifier_hashes=req.identifier_hashes,
        )
        log.info("erasure honoured: %d lead(s), %d event(s)", leads, events, extra={"request_id": req.request_id})
        if self.publish is None:
            return
        receipt = PersonErased(
            request_id=req.request_id,
            subject_hash=req.subject_hash,
            service="console",
            erased_at=datetime.now(UTC),
            items=[
                ErasedItem(store="postgres:console_leads", action="anonymised", count=leads),
                ErasedItem(store="postgres:console_events", action="redacted", count=events),
            ],
            remaining=list(REMAINING),
        )
        await self.publish(new_event(receipt, source=SOURCE, subject=req.subject_hash, id=f"{req.request_id}/console"))


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
