"""The canary's synthetic traffic never reaches the console's read model: its lead is no rep's to
work and no manager's number (the canary runs every 30 s in every stack)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from schemas.envelope import new_event
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from services.console.adapters.metrics import ConsoleMetrics
from services.console.handlers import Projector
from tests.unit.console.test_erasure import SECRET, T0, FakeStore, rec


async def test_synthetic_events_are_counted_and_skipped_and_the_rest_of_the_batch_projected() -> None:
    note = LeadOutcomeLogged(outcome_id="o1", lead_id="ld1", rep_id="rep-ana", outcome="lost", logged_at=T0)
    canary = note.model_copy(update={"outcome_id": "o2", "lead_id": "canary-1"})
    store, registry = FakeStore(), CollectorRegistry()
    projector = Projector(store, ConsoleMetrics(registry), privacy_secret=SECRET)
    batch = [
        rec(new_event(canary, source="t", subject="canary-1", synthetic=True)),
        rec(new_event(note, source="t", subject="ld1")),
        rec(new_event(canary, source="t", subject="canary-1", synthetic=True)),
    ]
    assert await projector.handle(batch) == 1
    assert store.calls == [("project", ["lead.outcome_logged"])]
    assert registry.get_sample_value("console_events_synthetic_total") == 2
    assert registry.get_sample_value("console_events_projected_total", {"type": "lead.outcome_logged"}) == 1


async def test_a_batch_of_only_synthetic_events_touches_no_store() -> None:
    note = LeadOutcomeLogged(outcome_id="o1", lead_id="canary-1", rep_id="rep-ana", outcome="lost", logged_at=T0)
    store = FakeStore()
    projector = Projector(store, ConsoleMetrics(CollectorRegistry()), privacy_secret=SECRET)
    assert await projector.handle([rec(new_event(note, source="t", subject="canary-1", synthetic=True))]) == 0
    assert store.calls == []
