"""Splitting a wrong merge (``leadpipe scoring split --lead-id X --capture-id Y``).

A split is its own trigger, as a rescore is: both ``lead.scored`` it publishes (the lead that
stays, re-folded without the capture, and the lead split off) say
``trigger.event_type = "leadpipe.scoring.split"`` and ``trigger.event_id`` is the cause id
``split:<lead id>:<capture id>``, which explains the change to every consumer; output ids derive
from the cause and the lead, so a split re-run after a crash republishes the same ids.

The identifiers move with the captures: the split-off lead's strong identifiers point at it;
a phone both leads gave stays linked to both (it is shared: it links no one after that).
Order, as everywhere: outputs acknowledged, then the states appended to the state topic, then
Redis written under WATCH (a batch of a worker that changed one of these leads meanwhile makes
the split read again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_scored.v1 import LeadScored, Trigger
from services.scoring.domain.enrichment import ReferenceData
from services.scoring.domain.errors import SplitError
from services.scoring.domain.identity import is_strong
from services.scoring.domain.lead import CaptureRecord, LeadState, split
from services.scoring.domain.model import ScoringModel
from services.scoring.domain.scoring import assess, scored_event, snapshot
from services.scoring.domain.snapshot import Snapshot
from services.scoring.handlers import SOURCE, identifiers_of, link, output_id

SPLIT_EVENT_TYPE = "leadpipe.scoring.split"


def captures_complete(state: LeadState) -> bool:
    """The lead keeps every capture it was folded from (else they are read back from the topic:
    a lead stored before leads kept captures, or with more than ``CAPTURE_LIMIT``)."""
    first = min((c.capture.captured_at for c in state.captures), default=None)
    return first is not None and state.first_captured_at is not None and first <= state.first_captured_at


def with_captures(state: LeadState, found: Mapping[str, Envelope[LeadCaptured]]) -> LeadState:
    """The lead with the captures read back from ``lead.captured`` (by the event ids it counted)
    added; refused when its first capture is no longer on the topic (retention)."""
    have = {c.event_id for c in state.captures}
    extra = [
        CaptureRecord(e.data.capture_id, eid, state.lead_id, tuple(identifiers_of(e).strings()), e.data)
        for eid, e in found.items()
        if eid not in have
    ]
    completed = replace(state, captures=tuple(sorted((*state.captures, *extra), key=lambda c: c.capture.captured_at)))
    if not captures_complete(completed):
        raise SplitError(
            f"lead_id: lead {state.lead_id} was first captured at {state.first_captured_at}, and that capture is "
            "no longer on lead.captured (retention): its captures cannot be re-folded, so it cannot be split",
            field="lead_id",
        )
    return completed


def split_cause(lead_id: str, capture_id: str) -> str:
    return f"split:{lead_id}:{capture_id}"


@dataclass(frozen=True, slots=True)
class Split:
    kept: LeadState
    split_off: LeadState
    moved_captures: tuple[str, ...]
    outputs: tuple[Envelope[LeadScored], ...]


def _scored(state: LeadState, model: ScoringModel, ref: ReferenceData, now: datetime, cause: str) -> tuple[
    LeadState, Envelope[LeadScored]
]:  # fmt: skip
    assessment = assess(state, ref, model, now)
    payload = scored_event(state, assessment, Trigger(event_id=cause, event_type=SPLIT_EVENT_TYPE), now)
    out = new_event(
        payload, source=SOURCE, subject=state.lead_id, id=output_id(cause, state.lead_id, model.version),
        correlationid=cause,
    )  # fmt: skip
    return replace(state, emitted=snapshot(state, assessment)), out


def split_lead(
    snap: Snapshot, lead_id: str, capture_id: str, model: ScoringModel, ref: ReferenceData, now: datetime
) -> Split:
    """Split ``capture_id`` out of ``lead_id`` in the snapshot (read with the lead's identifiers);
    returns both new states and the two ``lead.scored`` to publish before the snapshot is written."""
    state = snap.leads.get(lead_id)
    if state is None:
        raise SplitError(f"lead_id: no lead {lead_id!r} (never seen, or merged into another lead)", field="lead_id")
    kept, off = split(state, capture_id)
    if off.lead_id in snap.leads:
        raise SplitError(f"lead_id: the split-off lead {off.lead_id} exists already", field="lead_id")
    cause = split_cause(lead_id, capture_id)
    kept, kept_out = _scored(kept, model, ref, now, cause)
    off, off_out = _scored(off, model, ref, now, cause)
    for identifier in state.identifiers:
        if not is_strong(identifier) and identifier not in kept.identifiers:
            lids = snap.links.get(identifier, ())
            snap.links[identifier] = snap.changed_links[identifier] = tuple(x for x in lids if x != lead_id)
    link(snap, kept)
    link(snap, off)
    for s in (kept, off):
        snap.leads[s.lead_id] = snap.changed_leads[s.lead_id] = s
    moved = tuple(c.capture_id for c in off.captures)
    return Split(kept, off, moved, (kept_out, off_out))
