"""Shared building blocks of every event: the payload base class and common value types."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _require_tz(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset (e.g. 2026-05-01T09:30:00Z)")
    return value.astimezone(UTC)


#: A timestamp that must carry an offset; it is normalised to UTC.
UtcDatetime = Annotated[datetime, AfterValidator(_require_tz)]


class Payload(BaseModel):
    """Base of every event payload.

    Payloads are closed (unknown fields are an error) and immutable. Each concrete payload
    names its CloudEvents ``type`` and major ``version``; the topic and ``dataschema`` follow
    from those two.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    EVENT_TYPE: ClassVar[str]
    VERSION: ClassVar[int]

    @classmethod
    def topic(cls) -> str:
        return f"{cls.EVENT_TYPE}.v{cls.VERSION}"

    @classmethod
    def dataschema(cls) -> str:
        return f"urn:leadpipe:schema:{cls.EVENT_TYPE}:v{cls.VERSION}"

    @classmethod
    def ce_type(cls) -> str:
        return f"dev.leadpipe.{cls.EVENT_TYPE}"


class Part(BaseModel):
    """Base of nested value objects inside payloads (closed, immutable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    SLACK = "slack"
    WEBHOOK = "webhook"
    TASK = "task"


class SourceKind(StrEnum):
    WEB_FORM = "web_form"
    BOOTH_SCAN = "booth_scan"
    REFERRAL = "referral"
    CUSTOMER_IMPORT = "customer_import"
    API = "api"


#: The published enums a release may add values to, and what a consumer one release behind reads
#: for a value it does not know yet (docs/contracts.md, "Adding a value to a published enum"):
#: inside a list the unknown value is dropped; in a single field it reads as the fallback named
#: here, or, where the fallback is ``None`` (a consumer must not guess: an old notifier cannot
#: send on a channel it does not know), the record is refused (dead-lettered, replayable once
#: the consumer is upgraded). An enum not listed here is closed: a new value is a new version.
#: Producers never get this leniency (``schemas.codec.decode(..., strict=True)``).
OPEN_ENUMS: dict[type[StrEnum], StrEnum | None] = {
    SourceKind: SourceKind.API,
    Channel: None,
}


class Grade(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class Stage(StrEnum):
    CAPTURED = "captured"
    ENGAGED = "engaged"
    SALES_QUALIFIED = "sales_qualified"
    OPPORTUNITY = "opportunity"
    NEW_CUSTOMER = "new_customer"
    REPEAT_CUSTOMER = "repeat_customer"
    LOYAL_CUSTOMER = "loyal_customer"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


class BoothRating(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class EngagementKind(StrEnum):
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    EMAIL_REPLIED = "email_replied"
    EMAIL_BOUNCED = "email_bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    MEETING_BOOKED = "meeting_booked"
    PAGE_VISIT = "page_visit"
    PURCHASED = "purchased"


class MarketingBasis(Part):
    """On what basis a person may receive marketing, and on which channels.

    ``basis`` is ``consent`` when the person gave it (a ticked form box, a consent a booth
    scanner recorded) or ``legitimate_interest`` when a team configured that basis for the
    person's country. ``channels`` empty: no basis on any channel. Transactional messages (a
    reply to the person's own request, staff alerts) need no basis and carry none.
    """

    channels: tuple[Channel, ...] = ()
    basis: Literal["consent", "legitimate_interest"] = "consent"
    given_at: UtcDatetime | None = None
    source_kind: SourceKind | None = None
    capture_id: Annotated[str, Field(max_length=200)] | None = None
