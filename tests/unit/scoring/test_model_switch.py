"""The worker scores with the model version recorded as active, read with each batch."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from services.scoring.adapters.reference_files import ModelCatalog
from services.scoring.domain.model import fired_rules, rule_fires
from services.scoring.domain.scoring import enrich
from services.scoring.handlers import Scorer, ScoringBatch
from tests.fakes import FakePublisher
from tests.unit.scoring.fakes import FakeLeadStore, FakeStateLog, QuietObserver
from tests.unit.scoring.leads import MODEL, REF, capture, lead


def processor() -> ScoringBatch:
    async def built() -> None: ...

    return ScoringBatch(
        scorer=Scorer(MODEL, REF, QuietObserver()), store=FakeLeadStore(), state_log=FakeStateLog(),
        publisher=FakePublisher(), ensure_built=built, models=ModelCatalog().get,
    )  # fmt: skip


def test_the_worker_switches_to_the_active_version_and_back_to_its_own_when_none_is_recorded():
    batches = processor()
    batches._use_model("fit-2026.2")
    assert batches.scorer.model.version == "fit-2026.2"
    batches._use_model(None)
    assert batches.scorer.model is MODEL


def test_an_active_version_the_worker_does_not_ship_keeps_the_current_model_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
):
    batches = processor()
    with caplog.at_level(logging.ERROR, logger="services.scoring.handlers"):
        batches._use_model("fit-2099.1")
        batches._use_model("fit-2099.1")
    assert batches.scorer.model is MODEL
    assert [r.getMessage() for r in caplog.records if "fit-2099.1" in r.getMessage()] == [
        "active model fit-2099.1 not available, still scoring with fit-2026.1: "
        "unknown model version 'fit-2099.1' (known: fit-2026.1, fit-2026.2)"
    ]


@pytest.mark.parametrize(
    "event",
    [
        capture(title="VP Sales", country="US", need="replace spreadsheets", timeline="this quarter", seats=40),
        capture(email="ana@gmail.com", title="Student", country="BR"),
        capture(email="x@rivalsoft.com", title="Head of IT", country="DE", budget="approved", rating="hot"),
    ],
)
def test_compiled_rule_matching_fires_exactly_the_rules_rule_fires_does(event: Any):
    _, facts = enrich(lead(event), REF, MODEL)
    assert fired_rules(MODEL, facts) == [r for r in MODEL.rules if rule_fires(r, facts)]
