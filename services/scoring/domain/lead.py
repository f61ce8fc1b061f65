"""A lead's state as scoring keeps it, and how captures, engagements, merges and splits change it.

Every function returns a new state and leaves its input untouched, so a failed event
never leaves a half-applied change behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from services.scoring.domain.engagement import EngagementRecord
from services.scoring.domain.errors import SplitError
from services.scoring.domain.identity import Identifiers, is_strong, new_lead_id
from services.scoring.domain.qualification import asks_long_payment_terms

#: How many processed event ids and engagements a lead remembers.
SEEN_LIMIT = 500
HISTORY_LIMIT = 500
#: How many captures a lead keeps whole (what a split re-folds); the oldest go first.
CAPTURE_LIMIT = 50


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """A capture as it was counted, kept so that a wrong merge can be split again."""

    capture_id: str
    event_id: str
    #: The lead the capture was first counted on (a split gives a merged-away lead its id back).
    lead_id: str
    identifiers: tuple[str, ...]
    capture: LeadCaptured


@dataclass(frozen=True, slots=True)
class Emitted:
    """What was last published for the lead, to emit only on change."""

    score: float
    grade: str
    fingerprint: str
    model_version: str


@dataclass(frozen=True, slots=True)
class LeadState:
    lead_id: str
    created_at: datetime
    identifiers: tuple[str, ...] = ()
    captured: bool = False
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    full_name: str | None = None
    job_title: str | None = None
    company: str | None = None
    company_domain: str | None = None
    website: str | None = None
    country: str | None = None
    language: str | None = None
    timezone: str | None = None
    marketing_consent: bool = False
    #: Channels some capture's marketing consent covered, and the latest such capture (proof).
    consent_channels: tuple[str, ...] = ()
    consent_given_at: datetime | None = None
    consent_capture_id: str | None = None
    consent_source_kind: str | None = None
    source_kind: str | None = None
    first_captured_at: datetime | None = None
    last_captured_at: datetime | None = None
    form_id: str | None = None
    show_id: str | None = None
    show_ends_on: str | None = None
    booth_rating: str | None = None
    product_interest: tuple[str, ...] = ()
    seats: int | None = None
    need: str | None = None
    budget: str | None = None
    authority: str | None = None
    timeline: str | None = None
    referred_by: str | None = None
    long_payment_terms: bool = False
    engagements: tuple[EngagementRecord, ...] = ()
    suppressed_channels: tuple[str, ...] = ()
    complained: bool = False
    invalid_addresses: tuple[str, ...] = ()
    purchased: bool = False
    seen: tuple[str, ...] = ()
    merged_from: tuple[str, ...] = ()
    emitted: Emitted | None = field(default=None)
    captures: tuple[CaptureRecord, ...] = ()

    def has_seen(self, event_id: str) -> bool:
        return event_id in self.seen


def _add(items: tuple[str, ...], *new: str | None) -> tuple[str, ...]:
    out = list(items)
    for item in new:
        if item and item not in out:
            out.append(item)
    return tuple(out)


def _seen(state: LeadState, event_id: str) -> tuple[str, ...]:
    return (*state.seen, event_id)[-SEEN_LIMIT:]


def _latest(new: Any, old: Any) -> Any:
    """A capture's value wins when it says something; silence keeps what we knew."""
    if new is None or (isinstance(new, str) and not new.strip()):
        return old
    return new


def new_lead(lead_id: str, created_at: datetime) -> LeadState:
    return LeadState(lead_id=lead_id, created_at=created_at)


def apply_capture(state: LeadState, event_id: str, capture: LeadCaptured, ids: Identifiers) -> LeadState:
    """Fold a capture into the lead: newer answers win, nothing known is forgotten."""
    p, q, ctx = capture.person, capture.qualification, capture.context
    first = state.first_captured_at
    is_first = first is None or capture.captured_at < first
    last = state.last_captured_at
    is_latest = last is None or capture.captured_at >= last
    full_name = p.full_name or " ".join(n for n in (p.first_name, p.last_name) if n) or None
    consent = capture.consent.marketing if capture.consent is not None else None
    given = capture.consent if capture.consent is not None and capture.consent.marketing else None
    newer_consent = given is not None and (
        state.consent_given_at is None or (given.given_at or capture.captured_at) >= state.consent_given_at
    )

    def pick(new: Any, old: Any) -> Any:
        # An older capture (an offline booth batch arriving late) only fills gaps.
        return _latest(new, old) if is_latest else _latest(old, new)

    return replace(
        state,
        identifiers=_add(state.identifiers, *ids.strings()),
        captured=True,
        email=pick(ids.email, state.email),
        phone=pick(ids.phone, state.phone),
        first_name=pick(p.first_name, state.first_name),
        full_name=pick(full_name, state.full_name),
        job_title=pick(p.job_title, state.job_title),
        company=pick(p.company, state.company),
        company_domain=pick(p.company_domain, state.company_domain),
        website=pick(p.website, state.website),
        country=pick(p.country, state.country),
        language=pick(p.language, state.language),
        timezone=pick(p.timezone, state.timezone),
        marketing_consent=pick(consent, state.marketing_consent),
        # Consent adds channels; an unticked box later is not a withdrawal (that is an unsubscribe).
        consent_channels=_add(state.consent_channels, *(c.value for c in given.channels))
        if given
        else state.consent_channels,
        consent_given_at=(given.given_at or capture.captured_at) if given and newer_consent else state.consent_given_at,
        consent_capture_id=capture.capture_id if given and newer_consent else state.consent_capture_id,
        consent_source_kind=capture.source_kind.value if given and newer_consent else state.consent_source_kind,
        source_kind=capture.source_kind.value if is_first else state.source_kind,
        first_captured_at=capture.captured_at if is_first else first,
        last_captured_at=capture.captured_at if is_latest else last,
        form_id=pick(ctx.form_id, state.form_id),
        show_id=pick(ctx.show_id or capture.identity.show_id, state.show_id),
        show_ends_on=pick(ctx.show_ends_on, state.show_ends_on),
        booth_rating=pick(capture.booth_rating.value if capture.booth_rating else None, state.booth_rating),
        product_interest=_add(state.product_interest, *q.product_interest),
        seats=pick(q.seats, state.seats),
        need=pick(q.need, state.need),
        budget=pick(q.budget, state.budget),
        authority=pick(q.authority, state.authority),
        timeline=pick(q.timeline, state.timeline),
        referred_by=pick(ctx.referred_by, state.referred_by),
        long_payment_terms=state.long_payment_terms
        or asks_long_payment_terms(q.budget, q.timeline, *capture.notes, *q.other.values()),
        seen=_seen(state, event_id),
        captures=(
            *state.captures,
            CaptureRecord(capture.capture_id, event_id, state.lead_id, tuple(ids.strings()), capture),
        )[-CAPTURE_LIMIT:],
    )


def apply_engagement(state: LeadState, event_id: str, engagement: LeadEngagement, ids: Identifiers) -> LeadState:
    """Record an engagement; unsubscribes, complaints and hard bounces are carried forward."""
    kind, channel = engagement.kind.value, engagement.channel.value
    record = EngagementRecord(event_id, kind, engagement.occurred_at, channel)
    suppressed = state.suppressed_channels
    if kind in ("unsubscribed", "complained"):
        suppressed = _add(suppressed, channel)
    invalid = state.invalid_addresses
    if kind == "email_bounced" and engagement.bounce_type == "hard":
        invalid = _add(invalid, ids.email or state.email)
    return replace(
        state,
        identifiers=_add(state.identifiers, *ids.strings()) if not state.identifiers else state.identifiers,
        engagements=(*state.engagements, record)[-HISTORY_LIMIT:],
        suppressed_channels=suppressed,
        complained=state.complained or kind == "complained",
        invalid_addresses=invalid,
        purchased=state.purchased or kind == "purchased",
        seen=_seen(state, event_id),
    )


def merge(survivor: LeadState, others: list[LeadState]) -> LeadState:
    """Fold other leads into the survivor: the survivor's answers win, gaps are filled."""
    merged = survivor
    for other in others:
        filled: dict[str, Any] = {}
        for name in (
            "email", "phone", "first_name", "full_name", "job_title", "company", "company_domain", "website",
            "country", "language", "timezone", "form_id", "show_id", "show_ends_on", "booth_rating", "seats",
            "need", "budget", "authority", "timeline", "referred_by", "source_kind",
        ):  # fmt: skip
            filled[name] = _latest(getattr(merged, name), getattr(other, name))
        firsts = [t for t in (merged.first_captured_at, other.first_captured_at) if t is not None]
        lasts = [t for t in (merged.last_captured_at, other.last_captured_at) if t is not None]
        if other.first_captured_at is not None and (
            merged.first_captured_at is None or other.first_captured_at < merged.first_captured_at
        ):
            filled["source_kind"] = other.source_kind
        known = {e.event_id for e in merged.engagements}
        history = sorted(
            (*merged.engagements, *(e for e in other.engagements if e.event_id not in known)),
            key=lambda e: e.occurred_at,
        )
        merged = replace(
            merged,
            **filled,
            identifiers=_add(merged.identifiers, *other.identifiers),
            captured=merged.captured or other.captured,
            created_at=min(merged.created_at, other.created_at),
            marketing_consent=merged.marketing_consent or other.marketing_consent,
            consent_channels=_add(merged.consent_channels, *other.consent_channels),
            **_latest_consent(merged, other),
            first_captured_at=min(firsts) if firsts else None,
            last_captured_at=max(lasts) if lasts else None,
            product_interest=_add(merged.product_interest, *other.product_interest),
            long_payment_terms=merged.long_payment_terms or other.long_payment_terms,
            engagements=tuple(history[-HISTORY_LIMIT:]),
            suppressed_channels=_add(merged.suppressed_channels, *other.suppressed_channels),
            complained=merged.complained or other.complained,
            invalid_addresses=_add(merged.invalid_addresses, *other.invalid_addresses),
            purchased=merged.purchased or other.purchased,
            seen=tuple(dict.fromkeys((*other.seen, *merged.seen)))[-SEEN_LIMIT:],
            merged_from=_add(merged.merged_from, other.lead_id, *other.merged_from),
            captures=tuple(sorted((*merged.captures, *other.captures), key=lambda c: c.capture.captured_at))[
                -CAPTURE_LIMIT:
            ],
        )
    return merged


def _latest_consent(a: LeadState, b: LeadState) -> dict[str, Any]:
    """The proof of the more recent consent of two merged leads."""
    if b.consent_given_at is not None and (a.consent_given_at is None or b.consent_given_at > a.consent_given_at):
        a = b
    return {
        "consent_given_at": a.consent_given_at,
        "consent_capture_id": a.consent_capture_id,
        "consent_source_kind": a.consent_source_kind,
    }


def _refold(state: LeadState, captures: list[CaptureRecord]) -> LeadState:
    ordered = sorted(captures, key=lambda c: c.capture.captured_at)
    for record in ordered:
        state = apply_capture(state, record.event_id, record.capture, Identifiers.from_strings(record.identifiers))
    return replace(state, captures=tuple(ordered))


def split(state: LeadState, capture_id: str) -> tuple[LeadState, LeadState]:
    """Undo a wrong merge: the capture ``capture_id``, with every capture sharing one of its
    strong identifiers (the same person's other forms), leaves the lead for a lead of its own.

    Returns ``(kept, split_off)``. Both are re-folded from their own captures; the engagements,
    suppressions and processed event ids stay with the lead that counted them (an engagement
    carries no capture to tell whose it was). The split-off lead takes back the id of the lead
    its captures were first counted on when that was another lead merged in, else a new id
    derived from the lead and the capture (the same split always makes the same id).
    """
    target = next((c for c in state.captures if c.capture_id == capture_id), None)
    if target is None:
        known = ", ".join(c.capture_id for c in state.captures) or "none"
        raise SplitError(
            f"capture_id: {capture_id!r} is not a capture of lead {state.lead_id} (its captures: {known})",
            field="capture_id",
        )
    strong = {i for i in target.identifiers if is_strong(i)}
    moving, staying = [target], [c for c in state.captures if c is not target]
    while found := [c for c in staying if strong & set(c.identifiers)]:
        moving += found
        staying = [c for c in staying if all(c is not f for f in found)]
        strong |= {i for c in found for i in c.identifiers if is_strong(i)}
    if not staying:
        raise SplitError(
            f"capture_id: every capture of lead {state.lead_id} shares {sorted(strong) or 'the phone'} with "
            f"{capture_id!r}: nothing would remain to split from",
            field="capture_id",
        )
    origins = {c.lead_id for c in moving}
    off_id = (
        origins.pop()
        if len(origins) == 1 and state.lead_id not in origins
        else new_lead_id(f"split:{state.lead_id}:{capture_id}")
    )
    off = _refold(new_lead(off_id, min(c.capture.captured_at for c in moving)), moving)
    off = replace(off, seen=tuple(dict.fromkeys(c.event_id for c in moving)))
    from_captures = {i for c in state.captures for i in c.identifiers}
    kept = _refold(
        replace(
            new_lead(state.lead_id, state.created_at),
            identifiers=tuple(i for i in state.identifiers if i not in from_captures),
            engagements=state.engagements,
            suppressed_channels=state.suppressed_channels,
            complained=state.complained,
            invalid_addresses=state.invalid_addresses,
            purchased=state.purchased,
            merged_from=tuple(m for m in state.merged_from if m != off_id),
            emitted=state.emitted,
        ),
        staying,
    )
    return replace(kept, seen=state.seen), off
