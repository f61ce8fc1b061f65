"""An in-memory scoring keyspace for tests: events go through the real ``Scorer`` against a
snapshot of it, and the snapshot's changes are applied back as ``RedisLeadStore.write`` would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_scored.v1 import LeadScored
from services.scoring.domain.snapshot import Snapshot
from services.scoring.handlers import Scorer, identifiers_of
from tests.unit.scoring.leads import MODEL, REF, T0


class _Quiet:
    def graded(self, grade: str) -> None: ...
    def merged(self, count: int) -> None: ...
    def duplicate(self) -> None: ...


class World:
    def __init__(self) -> None:
        self.links: dict[str, tuple[str, ...]] = {}
        self.leads: dict[str, Any] = {}
        self.scorer = Scorer(MODEL, REF, _Quiet(), clock=lambda: T0)

    def snapshot(self) -> Snapshot:
        return Snapshot(links=dict(self.links), leads=dict(self.leads))

    def apply(self, snap: Snapshot) -> None:
        self.links |= snap.changed_links
        self.leads |= snap.changed_leads
        for lead_id in snap.deleted_leads:
            self.leads.pop(lead_id, None)

    def send(self, data: LeadCaptured | LeadEngagement, *, at: datetime = T0) -> list[Envelope[LeadScored]]:
        key = data.capture_id if isinstance(data, LeadCaptured) else data.engagement_id
        event = new_event(data, source="/tests", subject="k", id=f"evt-{key}", time=at)
        snap = self.snapshot()
        outcome = self.scorer.handle(event, identifiers_of(event), snap)
        self.apply(snap)
        return outcome.outputs

    def lead_of(self, identifier: str) -> str:
        return self.links[identifier][-1]
