"""``lead.scored`` version 1."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import (
    BoothRating,
    Channel,
    EngagementKind,
    Grade,
    MarketingBasis,
    Part,
    Payload,
    SourceKind,
    UtcDatetime,
)
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]
Answer = Literal["yes", "no", "unknown"]


class Profile(Part):
    """What scoring knows of the lead after identity resolution and enrichment."""

    email: Annotated[Text | None, PERSONAL] = None
    phone: Annotated[Text | None, PERSONAL] = None
    full_name: Annotated[Text | None, PERSONAL] = None
    job_title: Annotated[Text | None, PERSONAL] = None
    role: Text | None = None
    seniority: Text | None = None
    company: Text | None = None
    company_domain: Text | None = None
    industry: Text | None = None
    employees: Annotated[int, Field(ge=0)] | None = None
    country: Text | None = None
    timezone: Text | None = None
    language: Text | None = None
    email_kind: Literal["corporate", "free", "disposable", "unknown"] = "unknown"
    in_served_area: bool | None = None
    marketing_consent: bool = False


class ScoreReason(Part):
    """One rule that fired: which, why, and how many points it gave."""

    rule_id: Text
    description: Text
    points: float
    component: Literal["fit", "engagement"]


class QualificationSummary(Part):
    need: Answer = "unknown"
    means: Answer = "unknown"
    authority: Answer = "unknown"
    urgency: Answer = "unknown"


class Trigger(Part):
    """The event that caused this scoring."""

    event_id: Text
    event_type: Text
    engagement_kind: EngagementKind | None = None
    notification_id: Text | None = None
    bounce_type: Literal["hard", "soft"] | None = None
    channel: Channel | None = None


class CaptureSummary(Part):
    """How the lead first entered, and the latest capture's booth context."""

    source_kind: SourceKind
    first_captured_at: UtcDatetime
    last_captured_at: UtcDatetime
    form_id: Text | None = None
    show_id: Text | None = None
    show_ends_on: Text | None = None
    booth_rating: BoothRating | None = None
    product_interest: tuple[Text, ...] = ()


class LeadScored(Payload):
    """The lead's current fit and engagement scores, grade and the reasons behind them."""

    EVENT_TYPE = "lead.scored"
    VERSION = 1

    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    scored_at: UtcDatetime
    model_version: Text
    fit_score: float
    engagement_score: float
    score: float
    grade: Grade
    qualification: QualificationSummary = QualificationSummary()
    core_account: bool = False
    reasons: tuple[ScoreReason, ...] = ()
    profile: Profile = Profile()
    capture: CaptureSummary
    trigger: Trigger
    merged_lead_ids: tuple[Text, ...] = ()
    suppressed_channels: tuple[Channel, ...] = ()
    complained: bool = False
    invalid_addresses: Annotated[tuple[Text, ...], PERSONAL] = ()
    #: Marketing consent per channel from the lead's captures (added in place: optional).
    #: None: written before scoring carried it; read ``profile.marketing_consent`` as email only.
    consent: MarketingBasis | None = None
