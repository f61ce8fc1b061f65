from __future__ import annotations

import pytest

from services.scoring.adapters.reference_files import DATA_DIR, load_model, parse_model_text
from services.scoring.domain.errors import ModelError
from services.scoring.domain.model import condition_holds

GOOD = """
version: t-1
bands: {A: 50, B: 30, C: 10}
rules:
  - {id: r1, description: d, when: {seniority: {eq: vp}}, value: 10, weight: 2}
"""


def test_a_minimal_model_parses_with_default_engagement_half_life():
    model = parse_model_text(GOOD)
    assert model.version == "t-1" and model.engagement.half_life_days == 30


def test_a_rule_on_an_unknown_fact_is_rejected_naming_the_rule_and_the_fact():
    with pytest.raises(ModelError, match=r"rules\.0\.when.*unknown fact 'senority'") as info:
        parse_model_text(GOOD.replace("seniority", "senority"))
    assert info.value.field == "rules.0.when"


def test_an_unknown_operator_is_rejected():
    with pytest.raises(ModelError, match="unknown operator 'equals'"):
        parse_model_text(GOOD.replace("eq:", "equals:"))


def test_bands_must_descend():
    with pytest.raises(ModelError, match="bands must descend"):
        parse_model_text(GOOD.replace("A: 50", "A: 5"))


def test_duplicate_rule_ids_are_rejected():
    doubled = GOOD + "  - {id: r1, description: d, when: {seniority: {eq: vp}}, value: 1}\n"
    with pytest.raises(ModelError, match="duplicate rule id 'r1'"):
        parse_model_text(doubled)


def test_a_model_that_is_not_yaml_is_rejected_naming_its_origin():
    with pytest.raises(ModelError, match=r"new\.yaml: not valid YAML"):
        parse_model_text("version: [", "new.yaml")


def test_every_shipped_model_version_is_valid():
    versions = {load_model(p).version for p in sorted((DATA_DIR / "models").glob("*.yaml"))}
    assert versions == {"fit-2026.1", "fit-2026.2"}


def test_an_unknown_fact_never_matches_a_condition():
    assert not condition_holds(None, {"is": False}) and not condition_holds(None, {"ne": "x"})


def test_numeric_bands_include_the_lower_and_exclude_the_upper_bound():
    cond = {"gte": 200, "lt": 1000}
    assert [condition_holds(v, cond) for v in (199, 200, 999, 1000)] == [False, True, True, False]
