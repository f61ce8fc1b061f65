"""The lifecycle state machine: which stage moves are legal.

captured -> engaged (MQL) -> sales_qualified -> opportunity -> new_customer -> repeat_customer
-> loyal_customer, with the side exits recycled and disqualified, and the way back (a recycled
or disqualified lead re-engages; a customer who falls away is recycled and becomes a lead again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.base import Stage
from services.nurture.domain.errors import IllegalTransition

S = Stage

PRE_CUSTOMER = (S.CAPTURED, S.ENGAGED, S.SALES_QUALIFIED, S.OPPORTUNITY)
CUSTOMER = (S.NEW_CUSTOMER, S.REPEAT_CUSTOMER, S.LOYAL_CUSTOMER)
FUNNEL = (*PRE_CUSTOMER, *CUSTOMER)

ALLOWED: dict[Stage, frozenset[Stage]] = {
    S.CAPTURED: frozenset({S.ENGAGED, S.SALES_QUALIFIED, S.NEW_CUSTOMER, S.RECYCLED, S.DISQUALIFIED}),
    S.ENGAGED: frozenset({S.SALES_QUALIFIED, S.OPPORTUNITY, S.NEW_CUSTOMER, S.RECYCLED, S.DISQUALIFIED}),
    S.SALES_QUALIFIED: frozenset({S.OPPORTUNITY, S.NEW_CUSTOMER, S.ENGAGED, S.RECYCLED, S.DISQUALIFIED}),
    S.OPPORTUNITY: frozenset({S.NEW_CUSTOMER, S.SALES_QUALIFIED, S.RECYCLED, S.DISQUALIFIED}),
    S.NEW_CUSTOMER: frozenset({S.REPEAT_CUSTOMER, S.RECYCLED}),
    S.REPEAT_CUSTOMER: frozenset({S.LOYAL_CUSTOMER, S.RECYCLED}),
    S.LOYAL_CUSTOMER: frozenset({S.RECYCLED}),
    S.RECYCLED: frozenset({S.ENGAGED, S.SALES_QUALIFIED, S.NEW_CUSTOMER, S.DISQUALIFIED}),
    S.DISQUALIFIED: frozenset({S.ENGAGED, S.RECYCLED}),
}


@dataclass(frozen=True, slots=True)
class Transition:
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    at: datetime


def can_move(from_stage: Stage | None, to_stage: Stage) -> bool:
    if from_stage is None:
        return to_stage is S.CAPTURED
    return to_stage in ALLOWED[from_stage]


def move(from_stage: Stage | None, to_stage: Stage, reason: str, at: datetime) -> Transition:
    """A legal transition, or ``IllegalTransition`` (the caller counts it and keeps the stage)."""
    if not can_move(from_stage, to_stage):
        raise IllegalTransition(from_stage, to_stage, reason)
    return Transition(from_stage, to_stage, reason, at)


def rank(stage: Stage) -> int:
    """Position in the funnel (side exits rank below captured)."""
    return FUNNEL.index(stage) if stage in FUNNEL else -1
