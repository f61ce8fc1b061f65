"""Fit and engagement scores, grade, qualification, core-account flag and the explanation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from schemas.base import Channel, MarketingBasis, SourceKind
from schemas.lead_scored.v1 import CaptureSummary, LeadScored, Profile, ScoreReason, Trigger
from schemas.lead_scored.v1 import QualificationSummary as QualificationOut
from services.scoring.domain.engagement import engagement_score
from services.scoring.domain.enrichment import (
    ReferenceData,
    classify_email_domain,
    company_domain,
    email_domain,
    in_served_area,
    lookup_company,
    normalise_country,
    phone_country,
    timezone_for,
)
from services.scoring.domain.lead import Emitted, LeadState
from services.scoring.domain.model import ScoringModel, fired_rules
from services.scoring.domain.qualification import QualificationSummary, summarise
from services.scoring.domain.titles import read_title

GRADES = ("A", "B", "C", "D")


@dataclass(frozen=True, slots=True)
class Reason:
    rule_id: str
    description: str
    points: float
    component: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """A lead's scores under one model version, with the reasons behind them."""

    model_version: str
    fit: float
    engagement: float
    score: float
    grade: str
    qualification: QualificationSummary
    core_account: bool
    reasons: tuple[Reason, ...]
    profile: Profile
    facts: dict[str, Any]


def grade_for(score: float, model: ScoringModel) -> str:
    bands = model.bands
    if score >= bands.A:
        return "A"
    if score >= bands.B:
        return "B"
    if score >= bands.C:
        return "C"
    return "D"


def enrich(state: LeadState, ref: ReferenceData, model: ScoringModel) -> tuple[Profile, dict[str, Any]]:
    """The lead's profile after enrichment, and the facts the model's rules test."""
    title = read_title(state.job_title)
    mail_domain = email_domain(state.email)
    kind = classify_email_domain(mail_domain, ref)
    domain = company_domain(mail_domain, state.company_domain, state.website, kind)
    firm = lookup_company(domain, ref)
    country = normalise_country(state.country) or phone_country(state.phone) or (firm.country if firm else None)
    employees = firm.employees if firm else None
    qual = summarise(
        need=state.need,
        budget=state.budget,
        authority=state.authority,
        timeline=state.timeline,
        seniority=title.seniority,
        employees=employees,
        means_min_employees=model.qualification.means_min_employees,
    )
    competitor = bool((domain and domain in model.competitors) or (mail_domain and mail_domain in model.competitors))
    profile = Profile(
        email=state.email,
        phone=state.phone,
        full_name=state.full_name,
        job_title=state.job_title,
        role=title.role,
        seniority=title.seniority,
        company=state.company or (firm.company if firm else None),
        company_domain=domain,
        industry=firm.industry if firm else None,
        employees=employees,
        country=country,
        timezone=state.timezone or timezone_for(state.phone, country),
        language=state.language,
        email_kind=kind,
        in_served_area=in_served_area(country, ref),
        marketing_consent=state.marketing_consent,
    )
    facts: dict[str, Any] = {
        "seniority": title.seniority,
        "role": title.role,
        "employees": employees,
        "industry": profile.industry,
        "email_kind": kind,
        "in_served_area": profile.in_served_area,
        "competitor": competitor,
        "student": title.seniority == "student",
        "booth_rating": state.booth_rating,
        "need": qual.need,
        "means": qual.means,
        "authority": qual.authority,
        "urgency": qual.urgency,
        "seats": state.seats,
        "source_kind": state.source_kind,
        "country": country,
        "product_interest": list(state.product_interest),
        "long_payment_terms": state.long_payment_terms,
        "referred": bool(state.referred_by),
        "purchased": state.purchased,
        "_qualification": qual,
    }
    return profile, facts


def assess(state: LeadState, ref: ReferenceData, model: ScoringModel, now: datetime) -> Assessment:
    """Score a lead: fit from the rules that fire, engagement decayed to ``now``, then grade."""
    profile, facts = enrich(state, ref, model)
    qual: QualificationSummary = facts.pop("_qualification")
    reasons = [Reason(r.id, r.description, r.points, "fit") for r in fired_rules(model, facts)]
    fit = round(max(0.0, sum(r.points for r in reasons)), 2)
    eng_model = model.engagement
    engagement, by_kind = engagement_score(state.engagements, eng_model.points, eng_model.half_life_days, now)
    for kind, points in sorted(by_kind.items()):
        reasons.append(
            Reason(f"engagement.{kind}", f"Engagement: {kind.replace('_', ' ')} (decayed)", points, "engagement")
        )
    engagement = max(0.0, engagement)
    score = round(fit + engagement, 2)
    core_rule = model.core_account
    core = fit >= core_rule.min_fit and (
        (profile.employees or 0) >= core_rule.min_employees
        or (state.seats or 0) >= core_rule.min_seats
        or state.purchased
    )
    return Assessment(
        model_version=model.version,
        fit=fit,
        engagement=engagement,
        score=score,
        grade=grade_for(score, model),
        qualification=qual,
        core_account=core,
        reasons=tuple(reasons),
        profile=profile,
        facts=facts,
    )


def consent_channels(state: LeadState) -> tuple[str, ...]:
    """The channels the lead consented to. A state kept before channels were recorded has only
    ``marketing_consent``: forms then offered email alone, so that is what it covers."""
    if not state.consent_channels and state.marketing_consent and state.consent_given_at is None:
        return ("email",)
    return state.consent_channels


def fingerprint(state: LeadState, assessment: Assessment) -> str:
    """What nurture sees of the lead besides the score: a change here is worth an event."""
    body = orjson.dumps(
        [
            assessment.profile.model_dump(mode="json"),
            [assessment.qualification.need, assessment.qualification.means],
            [assessment.qualification.authority, assessment.qualification.urgency],
            assessment.core_account,
            state.suppressed_channels,
            state.complained,
            state.invalid_addresses,
            [state.form_id, state.show_id, state.booth_rating, state.product_interest],
            # Only when present, so the fingerprint of a lead without consent is unchanged.
            *([list(consent_channels(state))] if consent_channels(state) else []),
        ]
    )
    return hashlib.blake2b(body, digest_size=10).hexdigest()


def snapshot(state: LeadState, assessment: Assessment) -> Emitted:
    return Emitted(
        round(assessment.score, 1), assessment.grade, fingerprint(state, assessment), assessment.model_version
    )


def changed(previous: Emitted | None, current: Emitted) -> bool:
    """Emit only when score, grade, profile or model version changed."""
    return previous != current


def _score_reason(r: Reason) -> ScoreReason:
    return ScoreReason(rule_id=r.rule_id, description=r.description, points=r.points, component=r.component)


# A fit reason is the same value for every lead the rule fires for (engagement points decay,
# so those are built each time); the payload parts are immutable, so one instance is shared.
_fit_reason = lru_cache(maxsize=4096)(_score_reason)


def scored_event(
    state: LeadState,
    assessment: Assessment,
    trigger: Trigger,
    scored_at: datetime,
    merged_lead_ids: tuple[str, ...] = (),
) -> LeadScored:
    """The ``lead.scored`` payload for a captured lead."""
    if state.first_captured_at is None or state.last_captured_at is None or state.source_kind is None:
        raise ValueError("lead.scored: the lead has not been captured yet")
    q = assessment.qualification
    return LeadScored(
        lead_id=state.lead_id,
        scored_at=scored_at,
        model_version=assessment.model_version,
        fit_score=assessment.fit,
        engagement_score=assessment.engagement,
        score=assessment.score,
        grade=assessment.grade,
        qualification=QualificationOut(need=q.need, means=q.means, authority=q.authority, urgency=q.urgency),
        core_account=assessment.core_account,
        reasons=tuple(_fit_reason(r) if r.component == "fit" else _score_reason(r) for r in assessment.reasons),
        profile=assessment.profile,
        capture=CaptureSummary(
            source_kind=state.source_kind,
            first_captured_at=state.first_captured_at,
            last_captured_at=state.last_captured_at,
            form_id=state.form_id,
            show_id=state.show_id,
            show_ends_on=state.show_ends_on,
            booth_rating=state.booth_rating,
            product_interest=state.product_interest,
        ),
        trigger=trigger,
        merged_lead_ids=merged_lead_ids,
        suppressed_channels=state.suppressed_channels,
        complained=state.complained,
        invalid_addresses=state.invalid_addresses,
        consent=MarketingBasis(
            channels=tuple(Channel(c) for c in consent_channels(state)),
            given_at=state.consent_given_at,
            source_kind=SourceKind(state.consent_source_kind) if state.consent_source_kind else None,
            capture_id=state.consent_capture_id,
        ),
    )
