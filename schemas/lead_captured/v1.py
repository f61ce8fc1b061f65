"""``lead.captured`` version 1."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.base import BoothRating, Channel, Part, Payload, SourceKind, UtcDatetime
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]
LongText = Annotated[str, Field(max_length=5000)]


class Identity(Part):
    """What identifies the person. At least one of email, phone or (show_id, badge_id)."""

    email: Annotated[Annotated[str, Field(max_length=320)] | None, PERSONAL] = None
    phone: Annotated[Annotated[str, Field(max_length=40)] | None, PERSONAL] = None
    badge_id: Annotated[Text | None, PERSONAL] = None
    show_id: Text | None = None
    external_id: Annotated[Text | None, PERSONAL] = None


class Person(Part):
    first_name: Annotated[Text | None, PERSONAL] = None
    last_name: Annotated[Text | None, PERSONAL] = None
    full_name: Annotated[Text | None, PERSONAL] = None
    job_title: Annotated[Text | None, PERSONAL] = None
    company: Text | None = None
    company_domain: Text | None = None
    website: Text | None = None
    country: Annotated[str, Field(max_length=56)] | None = None
    region: Text | None = None
    city: Annotated[Text | None, PERSONAL] = None
    postal_code: Annotated[Annotated[str, Field(max_length=20)] | None, PERSONAL] = None
    language: Annotated[str, Field(max_length=35)] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None


class Consent(Part):
    """Proof of marketing consent as it was given."""

    marketing: bool
    channels: tuple[Channel, ...] = ()
    text_shown: LongText | None = None
    #: The version of the wording shown: as the show configured it, else ``sha256:`` and the
    #: first 16 hex digits of ``text_shown`` (captures under the same wording share it).
    text_version: Text | None = None
    given_at: UtcDatetime | None = None
    ip: Annotated[Annotated[str, Field(max_length=45)] | None, PERSONAL] = None
    user_agent: Annotated[Text | None, PERSONAL] = None


class CaptureContext(Part):
    """Where and how the capture happened."""

    form_id: Text | None = None
    landing_page: Annotated[str, Field(max_length=2000)] | None = None
    referrer_url: Annotated[str, Field(max_length=2000)] | None = None
    utm_source: Text | None = None
    utm_medium: Text | None = None
    utm_campaign: Text | None = None
    show_id: Text | None = None
    show_name: Text | None = None
    show_ends_on: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None
    booth: Text | None = None
    device_id: Text | None = None
    staff: Text | None = None
    referred_by: Annotated[Text | None, PERSONAL] = None
    batch_id: Text | None = None


class Qualification(Part):
    """Answers to the qualification questions (need, means, authority, urgency)."""

    need: Annotated[LongText | None, PERSONAL] = None
    budget: Text | None = None
    authority: Text | None = None
    timeline: Text | None = None
    seats: Annotated[int, Field(ge=0)] | None = None
    product_interest: tuple[Text, ...] = ()
    other: Annotated[dict[str, LongText], PERSONAL] = Field(default_factory=dict)


class LeadCaptured(Payload):
    """A capture source saw a person who may become a customer."""

    EVENT_TYPE = "lead.captured"
    VERSION = 1

    capture_id: Annotated[str, Field(min_length=1, max_length=200)]
    source_kind: SourceKind
    captured_at: UtcDatetime
    identity: Identity
    person: Person = Person()
    consent: Consent | None = None
    context: CaptureContext = CaptureContext()
    qualification: Qualification = Qualification()
    booth_rating: BoothRating | None = None
    notes: Annotated[tuple[LongText, ...], PERSONAL] = ()
    tags: tuple[Text, ...] = ()
