"""lead.captured / lead.engagement in -> domain -> lead.scored out, a batch at a time.

``ScoringBatch`` is the runtime's ``BatchHandler`` (``leadpipe.runtime.stream``, mode
``retry="batch"``): the batch is read from the store in one round trip (``begin``), applied
event by event in memory (so several events of one lead in a batch see each other; a failing
event leaves the batch's state as it was before that event), its outputs sent through the
``Publisher``, and (``commit``, after the runtime flushed the outputs: acked) the changed
states appended to the state topic, then written to Redis in one transaction. A crash anywhere
replays the batch: events already stored are skipped as duplicates, and anything published
again carries the same deterministic event id.

The batch's read also returns the keyspace's built marker: a Redis wiped under the worker is
rebuilt from the state topic (``ensure_built``) before the batch decides anything, and a wipe
between the read and the write fails the write's WATCH (``BatchConflict``): the batch runs again.

A re-run after a conflict publishes again for every lead its abandoned attempt published for,
whether or not anything changed since: that attempt's ``lead.scored`` is on the topic already
and may describe a lead that was never stored (another worker merged or updated it meanwhile).
Its id counts the lead's events (``output_id``), so the corrected one is not dropped as a
duplicate, and an unchanged lead gets the same id again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from leadpipe.runtime.erasure import erasure_receipt
from leadpipe.runtime.keystore import shred_item, shredded_remaining
from leadpipe.runtime.publish import Publisher
from leadpipe.runtime.stream import HandlerError
from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_scored.v1 import LeadScored, Trigger
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from schemas.pii import refs_for
from services.scoring.domain.engagement import ACTIONABLE
from services.scoring.domain.enrichment import ReferenceData, normalise_country
from services.scoring.domain.errors import IdentityError, ModelError, ScoringError
from services.scoring.domain.identity import (
    Identifiers,
    KnownLead,
    is_strong,
    new_lead_id,
    normalise_identifiers,
    relink_phone,
    resolve,
)
from services.scoring.domain.lead import LeadState, apply_capture, apply_engagement, merge, new_lead
from services.scoring.domain.model import ScoringModel
from services.scoring.domain.scoring import assess, changed, scored_event, snapshot
from services.scoring.domain.snapshot import Snapshot
from services.scoring.ports import LeadStore, Observer, StateAppender

log = logging.getLogger(__name__)

SOURCE = "/leadpipe/scoring"
_OUT_NS = uuid.UUID("5b0c7a52-3f7e-4f7e-9a51-6c1d1b0e8a11")


def identifiers_of(event: Envelope[Any]) -> Identifiers:
    """Normalised identifiers of an input event (``IdentityError`` when it has none)."""
    data = event.data
    i = data.identity
    country = normalise_country(data.person.country) if isinstance(data, LeadCaptured) else None
    return normalise_identifiers(
        email=i.email, phone=i.phone, show_id=i.show_id, badge_id=i.badge_id, external_id=i.external_id, country=country
    )


def output_id(event_id: str, lead_id: str, model_version: str, counted: Sequence[str] = ()) -> str:
    """Deterministic, so a replayed event produces the same ``lead.scored`` id under the same model.

    The model version is part of it: a batch published under the old model while the active
    version switched is re-run under the new one, and its outputs must not reuse the ids
    consumers have already seen (they would drop the corrected score as a duplicate).

    So is ``counted``, the events the lead has counted with this one (its ``seen``), for the
    stream's outputs: a batch re-run after another worker changed the lead (``BatchConflict``)
    decides on a lead that counts that worker's events too, and its output must not reuse the id
    of the abandoned attempt's, already on the topic and describing the lead without them
    (consumers would keep that one and drop the corrected one as a duplicate). A replay over the
    same stored lead counts the same events: the same id.
    """
    # uuid.uuid5 spelt out: the same value without building a UUID object (hot: once per output).
    name = f"{event_id}/{lead_id}/{model_version}".encode()
    if counted:
        name += ("/" + ",".join(counted)).encode()
    h = bytearray(hashlib.sha1(_OUT_NS.bytes + name, usedforsecurity=False).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@dataclass
class Outcome:
    outputs: list[Envelope[LeadScored]] = field(default_factory=list)
    duplicate: bool = False


class Scorer:
    """Applies input events to a batch snapshot and decides what to publish."""

    def __init__(
        self,
        model: ScoringModel,
        ref: ReferenceData,
        observer: Observer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.model = model
        self.ref = ref
        self.observer = observer
        self.clock = clock

    def handle(self, event: Envelope[Any], ids: Identifiers, snap: Snapshot) -> Outcome:
        """Apply one event to the snapshot; raises (leaving the snapshot untouched) on bad input."""
        keys = ids.strings()
        if isinstance(event.data, LeadCaptured):
            return self._capture(event, event.data, ids, keys, snap)
        if isinstance(event.data, LeadEngagement):
            return self._engagement(event, event.data, ids, keys, snap)
        raise ValueError(f"scoring does not handle {event.type}")

    def _capture(
        self, event: Envelope[Any], data: LeadCaptured, ids: Identifiers, keys: list[str], snap: Snapshot
    ) -> Outcome:
        # Only the leads these identifiers point at can be linked: no need to look at the whole batch.
        known = {
            lid: KnownLead(s.created_at, s.identifiers)
            for k in keys
            for lid in snap.links.get(k, ())
            if (s := snap.leads.get(lid)) is not None
        }
        res = resolve(keys, snap.links, known, salt=event.id)
        state = snap.leads.get(res.lead_id) or new_lead(res.lead_id, data.captured_at)
        # A redelivery may resolve elsewhere than the first delivery did: a phone-only scan went to
        # the number's one lead, and the number has since been given by someone else (shared: it
        # links nobody, the scan would make a lead of its own). Whichever linked lead counted it.
        if state.has_seen(event.id) or any(snap.leads[lid].has_seen(event.id) for lid in known):
            return Outcome(duplicate=True)
        others = [snap.leads[lid] for lid in res.merged_lead_ids if lid in snap.leads]
        if others:
            state = merge(state, others)
        state = apply_capture(state, event.id, data, ids)
        outputs = self._assess(event, state, snap, merged=res.merged_lead_ids, force=bool(res.merged_lead_ids))
        for lid in res.merged_lead_ids:
            snap.leads.pop(lid, None)
            snap.changed_leads.pop(lid, None)
            snap.deleted_leads.add(lid)
        if res.merged_lead_ids and not event.synthetic:
            self.observer.merged(len(res.merged_lead_ids))
        link(snap, state, res.merged_lead_ids)
        return outputs

    def _engagement(
        self, event: Envelope[Any], data: LeadEngagement, ids: Identifiers, keys: list[str], snap: Snapshot
    ) -> Outcome:
        # An engagement never merges leads: the strongest identifier that is known decides (for a
        # number several leads gave, the lead that gave it last: an engagement has no email to
        # tell them apart, and it does not change who anyone is).
        lead_id = next((snap.links[k][-1] for k in keys if snap.links.get(k)), None)
        state = snap.leads.get(lead_id) if lead_id else None
        if state is None:
            state = new_lead(new_lead_id(keys[0]), data.occurred_at)
            link(snap, replace(state, identifiers=tuple(keys)))
        if state.has_seen(event.id):
            return Outcome(duplicate=True)
        state = apply_engagement(state, event.id, data, ids)
        if not state.captured:
            # Kept (it counts once the capture arrives) but nothing to publish for nurture yet.
            snap.leads[state.lead_id] = snap.changed_leads[state.lead_id] = state
            return Outcome()
        return self._assess(event, state, snap, force=data.kind.value in ACTIONABLE)

    def _assess(
        self, event: Envelope[Any], state: LeadState, snap: Snapshot, *, merged: Sequence[str] = (), force: bool
    ) -> Outcome:
        assessment = assess(state, self.ref, self.model, event.time)
        current = snapshot(state, assessment)
        previous = state.emitted
        out = Outcome()
        # A lead an abandoned attempt of this batch published for: that lead.scored may describe a
        # state never stored (another worker changed the lead), so the re-run publishes it again.
        again = state.lead_id in snap.republish
        if force or again or changed(previous, current):
            snap.republish.discard(state.lead_id)
            payload = scored_event(state, assessment, self._trigger(event), self.clock(), tuple(merged))
            event_id = output_id(event.id, state.lead_id, assessment.model_version, state.seen)
            out.outputs.append(new_event(payload, source=SOURCE, subject=state.lead_id, id=event_id, cause=event))
            if not event.synthetic and (previous is None or previous.grade != current.grade):
                self.observer.graded(current.grade)
            state = replace(state, emitted=current)
        snap.leads[state.lead_id] = snap.changed_leads[state.lead_id] = state
        return out

    @staticmethod
    def _trigger(event: Envelope[Any]) -> Trigger:
        data = event.data
        if isinstance(data, LeadEngagement):
            return Trigger(
                event_id=event.id,
                event_type=event.type,
                engagement_kind=data.kind,
                notification_id=data.notification_id,
                bounce_type=data.bounce_type,
                channel=data.channel,
            )
        return Trigger(event_id=event.id, event_type=event.type)


def link(snap: Snapshot, state: LeadState, merged: Sequence[str] = ()) -> None:
    """Point the lead's identifiers at it: a strong identifier at it alone, a phone at it beside
    the other leads that gave the number (leads merged into it leave the number's list)."""
    for ident in state.identifiers:
        before = snap.links.get(ident, ())
        after = (state.lead_id,) if is_strong(ident) else relink_phone(before, state.lead_id, merged)
        if after != before:
            snap.links[ident] = snap.changed_links[ident] = after


class Eraser:
    """``person.erasure_requested`` in -> the person's lead profiles and identity links gone from
    Redis, tombstones on the state topic -> a ``person.erased`` receipt out."""

    def __init__(
        self,
        store: LeadStore,
        state_log: StateAppender,
        publisher: Publisher,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        erased_leads: Any | None = None,
    ):
        self.store = store
        self.state_log = state_log
        self.publisher = publisher
        self.clock = clock
        #: a Prometheus counter labelled by reason (privacy hook: retention sweep metrics)
        self.erased_leads = erased_leads

    async def handle(self, event: Envelope[Any]) -> None:
        req: PersonErasureRequested = event.data
        try:
            keys = normalise_identifiers(email=req.email, phone=req.phone).strings() if req.email or req.phone else []
        except IdentityError:  # e.g. only a phone that does not parse: the lead ids still count
            keys = []
        held: set[str] = set(keys)
        erased, links = await self.store.erase(keys, list(req.lead_ids), held=held)
        await self.state_log.append([], deleted=erased)
        # privacy hook: the data keys of every identifier and lead of theirs (crypto-shredding)
        refs = refs_for(email=req.email, phone=req.phone, lead_ids=[*req.lead_ids, *erased], identifiers=held)
        shredded = shred_item(refs)
        if self.erased_leads is not None and erased:
            reason = "retention" if req.requested_by.startswith("retention:") else "request"
            self.erased_leads.labels(reason).inc(len(erased))
        receipt = erasure_receipt(
            event, service="scoring", erased_at=self.clock(),
            items=[("redis:scoring:lead", "deleted", len(erased)), ("redis:scoring:link", "unlinked or deleted", links),
                   ("kafka:scoring.state.v1", "tombstoned", len(erased)),
                   *((i.store, i.action, i.count) for i in shredded)],
            remaining=shredded_remaining(shredded) or [
                "lead.captured.v1 / lead.engagement.v1 / lead.scored.v1 and their DLQs: append-only, until retention",
                "scoring.state.v1: older states until the log cleaner compacts the segment",
            ],
        )  # fmt: skip
        await self.publisher.publish([receipt])


class ScoringBatch:
    """The runtime's ``BatchHandler`` for lead.captured + lead.engagement (see the module docstring)."""

    def __init__(
        self,
        *,
        scorer: Scorer,
        store: LeadStore,
        state_log: StateAppender,
        publisher: Publisher,
        ensure_built: Callable[[], Awaitable[None]],
        models: Callable[[str], ScoringModel] | None = None,
    ):
        self.scorer = scorer
        self.default_model = scorer.model
        self.store = store
        self.state_log = state_log
        self.publisher = publisher
        self.ensure_built = ensure_built
        self.models = models
        self._refused: set[str] = set()
        self._ids: dict[str, Identifiers | ScoringError] = {}
        self._snap: Snapshot | None = None
        #: The leads this attempt published for, and those an abandoned attempt published for and
        #: no committed one has since: their last lead.scored may describe a state never stored.
        self._published: set[str] = set()
        self._unsettled: set[str] = set()

    def key(self, event: Envelope[Any]) -> str | None:
        return None  # one snapshot, applied in order (the runtime runs it with concurrency 1)

    async def begin(self, events: Sequence[Envelope[Any]]) -> None:
        self._ids = {}
        for event in events:
            try:
                self._ids[event.id] = identifiers_of(event)
            except ScoringError as exc:
                self._ids[event.id] = exc
        keys = [k for ids in self._ids.values() if isinstance(ids, Identifiers) for k in ids.strings()]
        snap = await self.store.read(keys)
        while not snap.built:
            await self.store.abandon()
            await self.ensure_built()  # Redis was wiped: nothing is decided on an empty keyspace
            snap = await self.store.read(keys)
        self._use_model(snap.model_version)
        snap.republish = set(self._unsettled)
        self._published = set()
        self._snap = snap

    async def handle(self, event: Envelope[Any]) -> None:
        assert self._snap is not None, "begin() reads the batch first"
        ids = self._ids.get(event.id)
        try:
            if ids is None:
                ids = identifiers_of(event)
            if isinstance(ids, ScoringError):
                raise ids
            outcome = self.scorer.handle(event, ids, self._snap)
        except ScoringError as exc:
            raise HandlerError(str(exc), field=exc.field) from exc
        if outcome.duplicate:
            self.scorer.observer.duplicate()
        if outcome.outputs:
            self._published.update(out.data.lead_id for out in outcome.outputs)
            await self.publisher.send(outcome.outputs)

    async def commit(self) -> None:
        snap, self._snap = self._snap, None
        assert snap is not None
        if snap.changed_leads or snap.deleted_leads:
            await self.state_log.append(snap.changed_leads.values(), snap.deleted_leads)
        await self.store.write(snap)
        self._unsettled -= self._published | snap.deleted_leads
        self._published = set()

    async def abandon(self) -> None:
        # Its outputs are on the topic already (the runtime flushed them before the write).
        self._unsettled |= self._published
        self._published = set()
        self._snap = None
        await self.store.abandon()

    def _use_model(self, version: str | None) -> None:
        """Score with the active model version recorded in the store (read with the batch)."""
        current = self.scorer.model
        if version is None:
            model = self.default_model
        elif version == current.version or self.models is None or version in self._refused:
            return
        else:
            try:
                model = self.models(version)
            except ModelError as exc:
                # A version this deployment does not ship: keep scoring with the current model
                # (and say so once) rather than stop the stage; rescore refuses such versions.
                self._refused.add(version)
                log.error("active model %s not available, still scoring with %s: %s", version, current.version, exc)
                return
        if model is not current:
            log.info("scoring model switched from %s to %s", current.version, model.version)
            self.scorer.model = model
