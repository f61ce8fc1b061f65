"""Re-scoring stored leads under a new model version: what is published, what is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.exceptions import WatchError

from schemas.envelope import Envelope
from schemas.lead_scored.v1 import LeadScored
from services.scoring.adapters.redis_store import Snapshot
from services.scoring.adapters.reference_files import MODELS_DIR, ModelCatalog
from services.scoring.domain.errors import ModelError
from services.scoring.domain.lead import LeadState
from services.scoring.domain.scoring import assess, snapshot
from services.scoring.handlers import output_id
from services.scoring.rescore import (
    RESCORE_EVENT_TYPE,
    Report,
    RescoreError,
    cause_id,
    rescore_all,
    rescore_lead,
)
from tests.unit.scoring.leads import MODEL, REF, T0, capture, days, engagement, lead

NEW = ModelCatalog().get("fit-2026.2")
CAUSE = cause_id("fit-2026.2", "run-1")


def published(state: LeadState) -> LeadState:
    """The lead as the worker leaves it: with what it last published under fit-2026.1."""
    return replace(state, emitted=snapshot(state, assess(state, REF, MODEL, T0)))


def served() -> LeadState:
    return published(lead(capture(email="dana@example.com", title="Director of Operations", country="US")))


def outside() -> LeadState:
    return published(lead(capture(email="rui@example.com", title="Director of Operations", country="BR")))


def test_a_lead_the_new_model_scores_differently_is_published_with_the_rescore_as_trigger():
    state = served()
    result = rescore_lead(state, NEW, REF, T0, CAUSE)
    assert result is not None and result.output is not None
    event = result.output
    assert event.data.model_version == "fit-2026.2" and event.data.lead_id == state.lead_id
    assert event.data.trigger.event_type == RESCORE_EVENT_TYPE and event.data.trigger.event_id == CAUSE
    assert event.id == output_id(CAUSE, state.lead_id, "fit-2026.2") and event.correlationid == CAUSE
    assert event.data.score == pytest.approx(state.emitted.score + 10)  # type: ignore[union-attr]
    assert {r.rule_id: r.points for r in event.data.reasons}["region.served"] == 20
    assert result.state.emitted is not None and result.state.emitted.model_version == "fit-2026.2"


def test_a_lead_the_new_model_scores_the_same_publishes_nothing_but_records_the_version():
    state = outside()
    result = rescore_lead(state, NEW, REF, T0, CAUSE)
    assert result is not None and result.output is None
    assert (result.grade_before, result.grade_after) == (state.emitted.grade, state.emitted.grade)  # type: ignore[union-attr]
    assert result.state.emitted == replace(state.emitted, model_version="fit-2026.2")  # type: ignore[type-var]


def test_rescoring_again_under_the_same_model_changes_nothing():
    first = rescore_lead(served(), NEW, REF, T0, CAUSE)
    assert first is not None
    again = rescore_lead(first.state, NEW, REF, T0, cause_id("fit-2026.2", "run-2"))
    assert again is not None and again.output is None and again.state is first.state


def test_engagement_decays_to_the_time_of_the_rescore():
    state = published(lead(capture(country="BR"), engagement("email_replied", at=T0)))
    later = rescore_lead(state, NEW, REF, T0 + days(30), CAUSE)
    assert later is not None and later.output is not None
    assert later.output.data.engagement_score == pytest.approx(7.5)


def test_leads_not_captured_yet_and_canary_leads_are_left_alone():
    only_engaged = lead(engagement("email_opened"))
    canary = published(lead(capture(email="probe-1@canary.leadpipe.invalid")))
    assert rescore_lead(only_engaged, NEW, REF, T0, CAUSE) is None
    assert rescore_lead(canary, NEW, REF, T0, CAUSE) is None


def test_the_report_counts_changes_and_tabulates_grade_transitions():
    report = Report("fit-2026.2", "fit-2026.1", dry_run=True)
    results = [rescore_lead(s, NEW, REF, T0, CAUSE) for s in (served(), outside(), lead(engagement("page_visit")))]
    report.add(results, published=0)
    assert (report.leads, report.skipped, report.changed) == (3, 1, 1)
    before, after = served().emitted.grade, results[0].grade_after  # type: ignore[union-attr]
    assert report.transitions[(before, after)] == 1
    table = report.table().splitlines()
    assert table[0].split() == ["before\\after", "A", "B", "C", "D"]
    assert report.as_dict()["transitions"] == {f"{k[0]}->{k[1]}": v for k, v in sorted(report.transitions.items())}


class FakeStore:
    """In memory, with the store's WATCH behaviour: a write fails if told to conflict."""

    def __init__(self, leads: list[LeadState], active: str | None, conflicts: int = 0):
        self.leads = {s.lead_id: s for s in leads}
        self.active = active
        self.conflicts = conflicts
        self.writes = 0
        self.abandoned = 0

    async def lead_ids(self, count: int = 500) -> AsyncIterator[list[str]]:
        ids = sorted(self.leads)
        for i in range(0, len(ids), count):
            yield ids[i : i + count]

    async def read_leads(self, lead_ids: list[str]) -> Snapshot:
        found = {lid: self.leads[lid] for lid in lead_ids if lid in self.leads}
        return Snapshot(links={}, leads=found, model_version=self.active)

    async def write(self, snap: Snapshot) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise WatchError("changed")
        self.writes += 1
        self.leads.update(snap.changed_leads)

    async def abandon(self) -> None:
        self.abandoned += 1


async def test_rescore_all_publishes_changes_writes_state_and_rereads_a_conflicting_chunk():
    store = FakeStore([served(), outside()], active="fit-2026.2", conflicts=1)
    sent: list[Envelope[LeadScored]] = []

    async def publish(outputs: list[Envelope[LeadScored]]) -> None:
        sent.extend(outputs)

    report = Report("fit-2026.2", "fit-2026.1", dry_run=False)
    seen: list[int] = []
    await rescore_all(
        store, NEW, REF, now=T0, cause=CAUSE, publish=publish, report=report, chunk_size=1, progress=seen.append
    )
    assert (report.leads, report.changed, report.published, report.conflicts) == (2, 1, 1, 1)
    # The conflicting chunk was published twice with the same id: consumers dedupe by id.
    assert {e.id for e in sent} == {output_id(CAUSE, served().lead_id, "fit-2026.2")}
    assert all(s.emitted and s.emitted.model_version == "fit-2026.2" for s in store.leads.values())
    assert seen == [1, 1]


async def test_a_dry_run_publishes_and_writes_nothing():
    store = FakeStore([served(), outside()], active=None)

    async def publish(outputs: list[Envelope[LeadScored]]) -> None:
        raise AssertionError("a dry run must not publish")

    report = Report("fit-2026.2", None, dry_run=True)
    await rescore_all(store, NEW, REF, now=T0, cause=CAUSE, publish=publish, report=report)
    assert (report.leads, report.changed, report.published) == (2, 1, 0)
    assert store.writes == 0 and store.abandoned == 1
    assert all(s.emitted and s.emitted.model_version == "fit-2026.1" for s in store.leads.values())


async def test_a_rescore_stops_when_another_run_switched_the_active_model():
    store = FakeStore([served()], active="fit-2026.1")

    async def publish(outputs: list[Envelope[LeadScored]]) -> None:
        raise AssertionError("nothing may be published")

    with pytest.raises(RescoreError, match=r"fit-2026\.1"):
        await rescore_all(
            store, NEW, REF, now=T0, cause=CAUSE, publish=publish, report=Report("fit-2026.2", None, False)
        )
    assert store.writes == 0 and store.abandoned == 1


def test_the_catalog_names_the_known_versions_for_an_unknown_one():
    catalog = ModelCatalog()
    assert catalog.versions() == ["fit-2026.1", "fit-2026.2"]
    with pytest.raises(
        ModelError, match=r"unknown model version 'fit-2099.1' \(known: fit-2026.1, fit-2026.2\)"
    ) as err:
        catalog.get("fit-2099.1")
    assert err.value.field == "model"
    with pytest.raises(ModelError, match="unknown model version"):
        catalog.get("../models/fit-2026.1")


def test_the_catalog_refuses_a_file_that_declares_another_version(tmp_path: Path):
    (tmp_path / "fit-2026.3.yaml").write_text((MODELS_DIR / "fit-2026.2.yaml").read_text())
    with pytest.raises(ModelError, match=r"declares version 'fit-2026\.2', expected 'fit-2026\.3'"):
        ModelCatalog(tmp_path).get("fit-2026.3")
