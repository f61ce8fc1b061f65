"""Playbooks: declarative, versioned cadences chosen by grade, source, booth rating and stage.

A playbook is a list of lead-facing steps (day offsets from the cadence start) and an optional
repeat (every N days after the last step), plus how sales gets involved (``assign``). The first
playbook whose ``match`` fits the lead wins; the last one should match everything (the default).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal

from schemas.base import BoothRating, Grade, SourceKind, Stage
from services.nurture.domain.calendar import Window
from services.nurture.domain.consent import ConsentPolicy, parse_consent_policy
from services.nurture.domain.errors import ConfigError

AssignMode = Literal["none", "immediate", "call_task"]
LEAD_TEMPLATES = frozenset({"lead_reply", "nurture_content", "weekly_checkin", "onboarding"})
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True, slots=True)
class Step:
    day: float
    template: str
    topic: str | None = None
    #: A reply to a request the lead just made is not a marketing touch: it may leave the window.
    respect_window: bool = True


@dataclass(frozen=True, slots=True)
class Repeat:
    every_days: float
    template: str
    topic: str | None = None
    start_day: float | None = None


@dataclass(frozen=True, slots=True)
class Match:
    grades: frozenset[Grade] = frozenset()
    sources: frozenset[SourceKind] = frozenset()
    booth_ratings: frozenset[BoothRating] = frozenset()
    stages: frozenset[Stage] = frozenset()

    def fits(self, grade: Grade, source: SourceKind, rating: BoothRating | None, stage: Stage) -> bool:
        return (
            (not self.grades or grade in self.grades)
            and (not self.sources or source in self.sources)
            and (not self.booth_ratings or rating in self.booth_ratings)
            and (not self.stages or stage in self.stages)
        )


@dataclass(frozen=True, slots=True)
class Playbook:
    id: str
    match: Match
    assign: AssignMode = "none"
    steps: tuple[Step, ...] = ()
    repeat: Repeat | None = None
    call_at: time = time(9, 0)

    def touch(self, index: int) -> Step | None:
        """The ``index``-th lead-facing touch (0-based), or None when the cadence is over."""
        if index < len(self.steps):
            return self.steps[index]
        if self.repeat is None:
            return None
        k = index - len(self.steps)
        if self.steps:
            day = self.steps[-1].day + self.repeat.every_days * (k + 1)
        else:
            day = (self.repeat.start_day or 0.0) + self.repeat.every_days * k
        return Step(day=day, template=self.repeat.template, topic=self.repeat.topic)

    def due_at(self, index: int, started_at: datetime) -> datetime | None:
        step = self.touch(index)
        return None if step is None else started_at + timedelta(days=step.day)


@dataclass(frozen=True, slots=True)
class Policy:
    """The respect-people and give-up rules (every number configurable)."""

    sending_window: Window = field(default_factory=Window)
    default_timezone: str = "UTC"
    frequency_cap: int = 3
    frequency_period: timedelta = timedelta(days=7)
    give_up_after_touches: int = 6
    give_up_after: timedelta = timedelta(weeks=8)
    renurture_after: timedelta = timedelta(days=90)
    unassigned_retry: timedelta = timedelta(minutes=15)
    sla: timedelta = timedelta(minutes=15)
    loyal_after_purchases: int = 3


@dataclass(frozen=True, slots=True)
class PlaybookSet:
    version: str
    playbooks: tuple[Playbook, ...]
    policy: Policy = field(default_factory=Policy)
    onboarding: str = "new_customer"
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)

    def choose(self, grade: Grade, source: SourceKind, rating: BoothRating | None, stage: Stage) -> Playbook | None:
        for pb in self.playbooks:
            if pb.match.fits(grade, source, rating, stage):
                return pb
        return None

    def get(self, playbook_id: str) -> Playbook | None:
        return next((p for p in self.playbooks if p.id == playbook_id), None)


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}.{key}", "missing")
    return data[key]


def _enum_set(values: Any, enum: Any, where: str) -> frozenset[Any]:
    if values is None:
        return frozenset()
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ConfigError(where, "must be a list")
    out = set()
    for v in values:
        try:
            out.add(enum(v))
        except ValueError as exc:
            raise ConfigError(where, f"unknown value {v!r}") from exc
    return frozenset(out)


def _clock(text: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(text))
    except ValueError as exc:
        raise ConfigError(where, f"not a HH:MM time: {text!r}") from exc


def parse_window(data: Mapping[str, Any] | None, where: str) -> Window:
    if not data:
        return Window()
    days = data.get("days", ["mon", "tue", "wed", "thu", "fri"])
    try:
        day_set = frozenset(_DAYS[str(d).lower()[:3]] for d in days)
    except KeyError as exc:
        raise ConfigError(f"{where}.days", f"unknown day {exc.args[0]!r}") from exc
    if not day_set:
        raise ConfigError(f"{where}.days", "must name at least one day")
    start, end = _clock(data.get("start", "09:00"), f"{where}.start"), _clock(data.get("end", "18:00"), f"{where}.end")
    if end <= start:
        raise ConfigError(f"{where}.end", "must be after start")
    return Window(day_set, start, end)


def _positive(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(where, f"not a number: {value!r}") from exc
    if number < 0:
        raise ConfigError(where, "must not be negative")
    return number


def parse_policy(data: Mapping[str, Any] | None) -> Policy:
    d = dict(data or {})
    w = "policy"
    return Policy(
        sending_window=parse_window(d.get("sending_window"), f"{w}.sending_window"),
        default_timezone=str(d.get("default_timezone", "UTC")),
        frequency_cap=int(_positive(d.get("frequency_cap_per_week", 3), f"{w}.frequency_cap_per_week")),
        give_up_after_touches=int(_positive(d.get("give_up_after_touches", 6), f"{w}.give_up_after_touches")),
        give_up_after=timedelta(days=_positive(d.get("give_up_after_days", 56), f"{w}.give_up_after_days")),
        renurture_after=timedelta(days=_positive(d.get("renurture_after_days", 90), f"{w}.renurture_after_days")),
        unassigned_retry=timedelta(
            minutes=_positive(d.get("unassigned_retry_minutes", 15), f"{w}.unassigned_retry_minutes")
        ),
        sla=timedelta(seconds=_positive(d.get("sla_seconds", 900), f"{w}.sla_seconds")),
        loyal_after_purchases=int(_positive(d.get("loyal_after_purchases", 3), f"{w}.loyal_after_purchases")),
    )


def _step(data: Mapping[str, Any], where: str) -> Step:
    template = str(_need(data, "template", where))
    if template not in LEAD_TEMPLATES:
        raise ConfigError(f"{where}.template", f"not a lead-facing template: {template!r}")
    return Step(
        day=_positive(_need(data, "day", where), f"{where}.day"),
        template=template,
        topic=data.get("topic"),
        respect_window=bool(data.get("respect_window", True)),
    )


def parse_playbooks(data: Mapping[str, Any]) -> PlaybookSet:
    """A playbook set from its YAML document; ``ConfigError`` names the offending field."""
    if not isinstance(data, Mapping):
        raise ConfigError("playbooks", "document must be a mapping")
    version = str(_need(data, "version", "playbooks"))
    items = _need(data, "playbooks", "playbooks")
    if not isinstance(items, Sequence) or not items:
        raise ConfigError("playbooks.playbooks", "must be a non-empty list")
    books: list[Playbook] = []
    for i, item in enumerate(items):
        w = f"playbooks[{i}]"
        pid = str(_need(item, "id", w))
        m = item.get("match") or {}
        match = Match(
            grades=_enum_set(m.get("grades"), Grade, f"{w}.match.grades"),
            sources=_enum_set(m.get("sources"), SourceKind, f"{w}.match.sources"),
            booth_ratings=_enum_set(m.get("booth_ratings"), BoothRating, f"{w}.match.booth_ratings"),
            stages=_enum_set(m.get("stages"), Stage, f"{w}.match.stages"),
        )
        assign = item.get("assign", "none")
        if assign not in ("none", "immediate", "call_task"):
            raise ConfigError(f"{w}.assign", f"must be none, immediate or call_task, not {assign!r}")
        steps = tuple(_step(s, f"{w}.steps[{j}]") for j, s in enumerate(item.get("steps") or ()))
        if any(b.day < a.day for a, b in itertools.pairwise(steps)):
            raise ConfigError(f"{w}.steps", "days must not go backwards")
        repeat = None
        if item.get("repeat"):
            r = item["repeat"]
            every = _positive(_need(r, "every_days", f"{w}.repeat"), f"{w}.repeat.every_days")
            if every <= 0:
                raise ConfigError(f"{w}.repeat.every_days", "must be positive")
            template = str(_need(r, "template", f"{w}.repeat"))
            if template not in LEAD_TEMPLATES:
                raise ConfigError(f"{w}.repeat.template", f"not a lead-facing template: {template!r}")
            start = r.get("start_day")
            repeat = Repeat(every, template, r.get("topic"), None if start is None else float(start))
        books.append(Playbook(pid, match, assign, steps, repeat, _clock(item.get("call_at", "09:00"), f"{w}.call_at")))
    ids = [b.id for b in books]
    if len(set(ids)) != len(ids):
        raise ConfigError("playbooks.playbooks", "ids must be unique")
    onboarding = str(data.get("onboarding_playbook", "new_customer"))
    if onboarding not in ids:
        raise ConfigError("playbooks.onboarding_playbook", f"no playbook with id {onboarding!r}")
    consent = parse_consent_policy(data.get("consent"))
    unknown = sorted(consent.transactional_templates - LEAD_TEMPLATES)
    if unknown:
        raise ConfigError("consent.transactional_templates", f"not a lead-facing template: {unknown[0]!r}")
    return PlaybookSet(version, tuple(books), parse_policy(data.get("policy")), onboarding, consent)
