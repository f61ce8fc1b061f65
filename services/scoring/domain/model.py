"""The declarative, versioned scoring model (parsed from YAML by the caller).

A rule is a tag: ``when`` maps facts to conditions (all must hold), and a rule that fires
gives ``value x weight`` points. Bands map the total score to grades A/B/C/D.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.scoring.domain.errors import ModelError

#: Facts a rule may test, and what kind of value each holds.
FACTS: dict[str, str] = {
    "seniority": "text",
    "role": "text",
    "employees": "number",
    "industry": "text",
    "email_kind": "text",
    "in_served_area": "bool",
    "competitor": "bool",
    "student": "bool",
    "booth_rating": "text",
    "need": "answer",
    "means": "answer",
    "authority": "answer",
    "urgency": "answer",
    "seats": "number",
    "source_kind": "text",
    "country": "text",
    "product_interest": "list",
    "long_payment_terms": "bool",
    "referred": "bool",
    "purchased": "bool",
}
OPERATORS = ("eq", "ne", "in", "gte", "gt", "lte", "lt", "is", "contains")
ENGAGEMENT_KINDS = (
    "email_opened",
    "email_clicked",
    "email_replied",
    "email_bounced",
    "complained",
    "unsubscribed",
    "meeting_booked",
    "page_visit",
    "purchased",
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Closed):
    id: Annotated[str, Field(min_length=1)]
    description: Annotated[str, Field(min_length=1)]
    when: dict[str, dict[str, Any]]
    value: float
    weight: float = 1.0

    @field_validator("when")
    @classmethod
    def _known_facts_and_operators(cls, when: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not when:
            raise ValueError("needs at least one condition")
        for fact, condition in when.items():
            if fact not in FACTS:
                raise ValueError(f"unknown fact {fact!r} (known: {', '.join(FACTS)})")
            if not condition:
                raise ValueError(f"{fact}: empty condition")
            for op, operand in condition.items():
                if op not in OPERATORS:
                    raise ValueError(f"{fact}: unknown operator {op!r} (known: {', '.join(OPERATORS)})")
                if op == "in" and not isinstance(operand, list):
                    raise ValueError(f"{fact}.in: expects a list")
                if op in ("gte", "gt", "lte", "lt") and not isinstance(operand, int | float):
                    raise ValueError(f"{fact}.{op}: expects a number")
                if op == "is" and not isinstance(operand, bool):
                    raise ValueError(f"{fact}.is: expects true or false")
        return when

    @property
    def points(self) -> float:
        return round(self.value * self.weight, 4)


class Bands(_Closed):
    """Lowest score of each grade; anything below C is D."""

    A: float
    B: float
    C: float

    @model_validator(mode="after")
    def _descending(self) -> Bands:
        if not self.A > self.B > self.C:
            raise ValueError("bands must descend: A > B > C")
        return self


class EngagementModel(_Closed):
    half_life_days: Annotated[float, Field(gt=0)] = 30.0
    points: dict[str, float] = Field(default_factory=dict)

    @field_validator("points")
    @classmethod
    def _known_kinds(cls, points: dict[str, float]) -> dict[str, float]:
        for kind in points:
            if kind not in ENGAGEMENT_KINDS:
                raise ValueError(f"unknown engagement kind {kind!r}")
        return points


class CoreAccountRule(_Closed):
    """The 80/20 few: a good fit that also buys at scale, is large, or has bought before."""

    min_fit: float = 45.0
    min_employees: int = 1000
    min_seats: int = 50


class QualificationModel(_Closed):
    means_min_employees: int = 200


class ScoringModel(_Closed):
    """One version of the scoring model."""

    version: Annotated[str, Field(min_length=1, max_length=100)]
    bands: Bands
    rules: tuple[Rule, ...]
    engagement: EngagementModel = EngagementModel()
    core_account: CoreAccountRule = CoreAccountRule()
    qualification: QualificationModel = QualificationModel()
    competitors: frozenset[str] = frozenset()

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return rules


def parse_model(data: Mapping[str, Any]) -> ScoringModel:
    """Validate a parsed YAML document; ``ModelError`` names the first bad field."""
    try:
        return ScoringModel.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors]
        field = ".".join(str(p) for p in errors[0]["loc"])
        raise ModelError("scoring model: " + "; ".join(parts), field=field) from exc


def condition_holds(value: Any, condition: Mapping[str, Any]) -> bool:
    """Every operator holds for the fact's value; an unknown (None) fact never matches."""
    if value is None:
        return False
    for op, operand in condition.items():
        if op == "eq":
            ok = value == operand
        elif op == "ne":
            ok = value != operand
        elif op == "in":
            ok = value in operand
        elif op == "contains":
            ok = operand in value
        elif op == "is":
            ok = value is operand
        elif not isinstance(value, int | float) or isinstance(value, bool):
            ok = False
        elif op == "gte":
            ok = value >= operand
        elif op == "gt":
            ok = value > operand
        elif op == "lte":
            ok = value <= operand
        else:
            ok = value < operand
        if not ok:
            return False
    return True


def rule_fires(rule: Rule, facts: Mapping[str, Any]) -> bool:
    return all(condition_holds(facts.get(fact), cond) for fact, cond in rule.when.items())


#: Each model's rules as (rule, conditions) pairs, built once per model object (few versions exist).
_COMPILED: dict[int, tuple[ScoringModel, tuple[tuple[Rule, tuple[tuple[str, dict[str, Any]], ...]], ...]]] = {}


def fired_rules(model: ScoringModel, facts: Mapping[str, Any]) -> list[Rule]:
    """The model's rules that fire for these facts, in model order (same as ``rule_fires`` on each)."""
    entry = _COMPILED.get(id(model))
    if entry is None or entry[0] is not model:
        entry = _COMPILED[id(model)] = (model, tuple((r, tuple(r.when.items())) for r in model.rules))
    out = []
    get = facts.get
    for rule, conditions in entry[1]:
        for fact, condition in conditions:
            if not condition_holds(get(fact), condition):
                break
        else:
            out.append(rule)
    return out
