"""Job title -> role (function) and seniority, in English and Chinese.

Seniority levels, highest first: ``c_level``, ``vp``, ``head``, ``director``, ``manager``,
``individual``, ``student``. A title that names none is ``None`` (unknown), never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Order matters: the first level whose pattern matches wins ("Vice President" before
# "President", "副总裁" before "总裁", "Assistant to the Director" is not a director).
_SENIORITY: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("student", re.compile(r"\b(student|intern|trainee|phd candidate)\b|学生|实习|研究生", re.I)),
    ("individual", re.compile(r"\bassistant (to|of)\b|秘书|助理", re.I)),
    ("vp", re.compile(r"\b(vp|svp|evp|avp|vice[ -]president)\b|副总裁|副总经理|副总", re.I)),
    (
        "c_level",
        re.compile(
            r"\b(ceo|cto|cfo|coo|cio|cmo|cro|cpo|chief\b|president|founder|co-founder|owner|managing director|"
            r"general manager)\b|首席|总裁|董事长|创始人|总经理|老板",
            re.I,
        ),
    ),
    ("head", re.compile(r"\bhead of\b|\bhead\b|负责人|部长", re.I)),
    ("director", re.compile(r"\bdirector\b|总监|主任", re.I)),
    ("manager", re.compile(r"\b(manager|lead|supervisor|team lead)\b|经理|主管|组长", re.I)),
    (
        "individual",
        re.compile(
            r"\b(engineer|developer|analyst|specialist|consultant|associate|coordinator|designer|"
            r"representative|assistant|accountant|administrator|scientist|officer)\b|工程师|专员|分析师|助理|顾问|设计师",
            re.I,
        ),
    ),
)

_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("procurement", re.compile(r"\b(procurement|purchasing|buyer|sourcing)\b|采购", re.I)),
    (
        "engineering",
        re.compile(r"\b(engineering|engineer|developer|r&d|technology|technical|cto)\b|技术|研发|工程", re.I),
    ),
    ("it", re.compile(r"\b(it|information technology|infrastructure|cio|systems)\b|信息|IT", re.I)),
    ("operations", re.compile(r"\b(operations|ops|supply chain|logistics|coo)\b|运营|物流|供应链", re.I)),
    ("sales", re.compile(r"\b(sales|business development|account executive|cro)\b|销售|商务|业务", re.I)),
    ("marketing", re.compile(r"\b(marketing|growth|brand|cmo|communications)\b|市场|营销|品牌", re.I)),
    ("finance", re.compile(r"\b(finance|financial|accounting|accountant|controller|cfo)\b|财务|会计", re.I)),
    ("hr", re.compile(r"\b(hr|human resources|people|talent|recruiting)\b|人力|人事|招聘", re.I)),
    ("product", re.compile(r"\b(product)\b|产品", re.I)),
    (
        "executive",
        re.compile(
            r"\b(ceo|president|founder|owner|general manager|managing director)\b|首席执行官|总裁|董事长|总经理|创始人",
            re.I,
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class TitleReading:
    role: str | None
    seniority: str | None


# Pure and hot (every event re-reads the lead's title): a bounded memo is safe.
@lru_cache(maxsize=16384)
def read_title(title: str | None) -> TitleReading:
    """Role and seniority a job title states (``None`` for what it does not say)."""
    if not title or not title.strip():
        return TitleReading(None, None)
    text = title.strip()
    seniority = next((level for level, pattern in _SENIORITY if pattern.search(text)), None)
    role = next((name for name, pattern in _ROLES if pattern.search(text)), None)
    return TitleReading(role, seniority)
