"""Re-scoring every known lead under a model version (``leadpipe scoring rescore``).

A rescore is its own trigger: each ``lead.scored`` it publishes says
``trigger.event_type = "leadpipe.scoring.rescore"`` and ``trigger.event_id`` is the run's
cause id (``rescore:<model version>:<run id>``); the output id derives from the cause id and
the lead id, so running the same run id again republishes the same ids (consumers dedupe).
As in the worker, only a change of score, grade or profile is published; a lead whose
result is unchanged under the new model only has its state note the new version.

Safe beside running workers:

1. the version is first recorded as active in the store; every worker reads it with its next
   batch and scores new events with it, and a batch in flight during the switch fails its
   WATCH and is re-run under the new model;
2. leads are then re-scored a chunk at a time, each chunk read and written under WATCH, so a
   chunk a worker changed meanwhile is read again rather than overwritten with stale state;
3. a chunk's outputs are published (and acknowledged) before its state is appended to the
   state topic and written: a crash re-runs the chunk (same ids), never loses an output.

Canary leads (addresses under the reserved ``.invalid`` top-level domain) are left alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from redis.exceptions import WatchError

from leadpipe.runtime.stream import BatchConflict
from schemas.envelope import Envelope, new_event
from schemas.lead_scored.v1 import LeadScored, Trigger
from services.scoring.domain.enrichment import ReferenceData, email_domain
from services.scoring.domain.lead import Emitted, LeadState
from services.scoring.domain.model import ScoringModel
from services.scoring.domain.scoring import GRADES, assess, scored_event, snapshot
from services.scoring.domain.snapshot import Snapshot
from services.scoring.handlers import SOURCE, output_id

RESCORE_EVENT_TYPE = "leadpipe.scoring.rescore"


class RescoreError(Exception):
    """The rescore cannot go on (e.g. another run switched the active model meanwhile)."""


def cause_id(model_version: str, run_id: str) -> str:
    return f"rescore:{model_version}:{run_id}"


def is_synthetic(state: LeadState) -> bool:
    domain = email_domain(state.email)
    return bool(domain and (domain == "invalid" or domain.endswith(".invalid")))


def outcome_changed(previous: Emitted | None, current: Emitted) -> bool:
    """What a rescore publishes on: score, grade or profile (not the model version alone)."""
    if previous is None:
        return True
    return (previous.score, previous.grade, previous.fingerprint) != (current.score, current.grade, current.fingerprint)


@dataclass(frozen=True, slots=True)
class Rescored:
    """One lead under the new model: its new state, grades before and after, and what to publish."""

    state: LeadState
    grade_before: str | None
    grade_after: str
    output: Envelope[LeadScored] | None


def rescore_lead(
    state: LeadState, model: ScoringModel, ref: ReferenceData, now: datetime, cause: str
) -> Rescored | None:
    """Score a stored lead under ``model`` at ``now``; None for leads a rescore leaves alone."""
    if not state.captured or is_synthetic(state):
        return None
    assessment = assess(state, ref, model, now)
    current = snapshot(state, assessment)
    previous = state.emitted
    output = None
    if outcome_changed(previous, current):
        trigger = Trigger(event_id=cause, event_type=RESCORE_EVENT_TYPE)
        payload = scored_event(state, assessment, trigger, now)
        output = new_event(
            payload,
            source=SOURCE,
            subject=state.lead_id,
            id=output_id(cause, state.lead_id, model.version),
            correlationid=cause,
        )
    new_state = state if current == previous else replace(state, emitted=current)
    return Rescored(new_state, previous.grade if previous else None, current.grade, output)


@dataclass
class Report:
    """What a run did (or, dry, would do)."""

    model_version: str
    previous_version: str | None
    dry_run: bool
    leads: int = 0
    skipped: int = 0
    changed: int = 0
    published: int = 0
    conflicts: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def grade_changes(self) -> int:
        return sum(n for (before, after), n in self.transitions.items() if before != after)

    def add(self, results: Sequence[Rescored | None], published: int) -> None:
        for r in results:
            self.leads += 1
            if r is None:
                self.skipped += 1
                continue
            self.changed += r.output is not None
            self.transitions[(r.grade_before or "-", r.grade_after)] += 1
        self.published += published

    def table(self) -> str:
        """Grade transitions: rows are the grade last published, columns the grade under the model."""
        rows = ["-", *GRADES]
        width = max(6, *(len(str(n)) + 1 for n in self.transitions.values())) if self.transitions else 6
        lines = ["before\\after" + "".join(f"{g:>{width}}" for g in GRADES)]
        for before in rows:
            counts = [self.transitions.get((before, after), 0) for after in GRADES]
            if before == "-" and not any(counts):
                continue
            lines.append(f"{before:<12}" + "".join(f"{n:>{width}}" for n in counts))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "model_version": self.model_version,
            "previous_version": self.previous_version,
            "dry_run": self.dry_run,
            "leads": self.leads,
            "skipped": self.skipped,
            "changed": self.changed,
            "grade_changes": self.grade_changes,
            "published": self.published,
            "conflicts": self.conflicts,
            "transitions": {f"{b}->{a}": n for (b, a), n in sorted(self.transitions.items())},
        }


class LeadStore(Protocol):
    """What a rescore needs of the store (``RedisLeadStore`` implements it)."""

    def lead_ids(self, count: int = 500) -> AsyncIterator[list[str]]: ...
    async def read_leads(self, lead_ids: list[str]) -> Snapshot: ...
    async def write(self, snap: Snapshot) -> None: ...
    async def abandon(self) -> None: ...


#: Publishes a chunk's outputs and returns once the broker acknowledged every one.
Publish = Callable[[list[Envelope[LeadScored]]], Awaitable[None]]


async def rescore_all(
    store: LeadStore,
    model: ScoringModel,
    ref: ReferenceData,
    *,
    now: datetime,
    cause: str,
    publish: Publish,
    report: Report,
    chunk_size: int = 500,
    progress: Callable[[int], object] = lambda n: None,
    record: Callable[[list[LeadState]], Awaitable[object]] | None = None,
) -> Report:
    """Re-score every lead in the store, a chunk at a time; dry runs publish and write nothing."""
    async for ids in store.lead_ids(chunk_size):
        while True:
            snap = await store.read_leads(ids)
            try:
                if not report.dry_run and snap.model_version != model.version:
                    raise RescoreError(
                        f"the active model changed to {snap.model_version!r} during the rescore to {model.version!r}"
                    )
                results = [rescore_lead(s, model, ref, now, cause) for s in snap.leads.values()]
                outputs = [r.output for r in results if r is not None and r.output is not None]
                if report.dry_run:
                    await store.abandon()
                    break
                await publish(outputs)
                snap.changed_leads = {
                    r.state.lead_id: r.state
                    for r, old in zip(results, snap.leads.values(), strict=True)
                    if r is not None and r.state is not old
                }
                if record is not None and snap.changed_leads:
                    await record(list(snap.changed_leads.values()))  # the state topic, before Redis
                await store.write(snap)
                break
            except (WatchError, BatchConflict):
                # A worker changed one of these leads (or merged it away): read them again.
                report.conflicts += 1
            except BaseException:
                await store.abandon()
                raise
        report.add(results, 0 if report.dry_run else len(outputs))
        progress(len(ids))
    return report
