"""The qualification summary: need, means, authority and urgency, each yes, no or unknown.

Answers come as free text from forms and booth staff, in English or Chinese. A clear
answer decides; otherwise means and authority fall back on company size and seniority.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Answer = Literal["yes", "no", "unknown"]

_NEGATIVE = re.compile(
    r"^\s*(no|none|nope|n/a|na|nothing|not (now|yet|really|sure)|no need|no budget|no plans?|just (looking|browsing))\b"
    r"|\b(no budget|not interested|no need|no plans?)\b|没有|不需要|无预算|没预算|暂无|无|否|不是",
    re.I,
)
_AFFIRMATIVE = re.compile(r"^\s*(yes|y|yep|sure|approved|allocated)\b|^\s*是|有", re.I)
_MONEY = re.compile(r"\d|\$|€|£|¥|万|千|k\b|budget", re.I)
_DECIDER = re.compile(
    r"decision[ -]?maker|\bi decide\b|\bfinal say\b|\bsign(s|er)?\b|\bapprover?\b|\bowner\b|^\s*(yes|y)\b"
    r"|决策人|拍板|我决定|负责决策|审批人|^\s*是",
    re.I,
)
_NOT_DECIDER = re.compile(
    r"influencer|recommend|evaluat|need(s)? approval|not the decision|researching|^\s*(no|n)\b"
    r"|影响者|推荐|评估|需要审批|不是决策",
    re.I,
)
_URGENT = re.compile(
    r"\b(asap|urgent|urgently|immediately|now|right away|this (week|month|quarter)|next (week|month)|"
    r"within (a|one|two|three|1|2|3) (weeks?|months?)|[0-3] ?months?|q[1-4] ?20\d\d)\b"
    r"|马上|立即|尽快|紧急|本周|本月|本季度|下个月|三个月内|一个月内",
    re.I,
)
_NOT_URGENT = re.compile(
    r"\b(next year|someday|no (rush|timeline|plans?)|not (urgent|soon)|just (looking|browsing)|"
    r"(6|9|12|18|24) ?months?|later)\b|明年|以后|不急|暂不",
    re.I,
)
_LONG_TERMS = re.compile(
    r"\bnet ?(60|90|120|180)\b|long payment terms|extended terms|pay later|账期|赊账|延期付款", re.I
)

HIGH_SENIORITY = frozenset({"c_level", "vp", "head", "director"})


@dataclass(frozen=True, slots=True)
class QualificationSummary:
    need: Answer
    means: Answer
    authority: Answer
    urgency: Answer


def need_answer(text: str | None) -> Answer:
    if not text or not text.strip():
        return "unknown"
    return "no" if _NEGATIVE.search(text) else "yes"


def means_answer(budget: str | None, employees: int | None, min_employees: int) -> Answer:
    if budget and budget.strip():
        if _NEGATIVE.search(budget):
            return "no"
        if _AFFIRMATIVE.search(budget) or _MONEY.search(budget):
            return "yes"
    if employees is not None and employees >= min_employees:
        return "yes"
    return "unknown"


def authority_answer(text: str | None, seniority: str | None) -> Answer:
    if text and text.strip():
        if _NOT_DECIDER.search(text):
            return "no"
        if _DECIDER.search(text):
            return "yes"
    if seniority in HIGH_SENIORITY:
        return "yes"
    if seniority in ("individual", "student"):
        return "no"
    return "unknown"


def urgency_answer(timeline: str | None) -> Answer:
    if not timeline or not timeline.strip():
        return "unknown"
    if _NOT_URGENT.search(timeline):
        return "no"
    if _URGENT.search(timeline):
        return "yes"
    return "unknown"


def asks_long_payment_terms(*texts: str | None) -> bool:
    return any(t and _LONG_TERMS.search(t) for t in texts)


def summarise(
    *,
    need: str | None,
    budget: str | None,
    authority: str | None,
    timeline: str | None,
    seniority: str | None,
    employees: int | None,
    means_min_employees: int = 200,
) -> QualificationSummary:
    return QualificationSummary(
        need=need_answer(need),
        means=means_answer(budget, employees, means_min_employees),
        authority=authority_answer(authority, seniority),
        urgency=urgency_answer(timeline),
    )
