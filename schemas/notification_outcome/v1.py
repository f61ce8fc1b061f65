"""``notification.outcome`` version 1."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Channel, Payload, UtcDatetime
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]

#: ``error`` of a ``suppressed`` outcome for a marketing message whose consent does not cover its
#: channel (the address itself is not suppressed: consent given later makes it usable).
NO_CONSENT_ERROR = "no consent for channel"


class NotificationOutcome(Payload):
    """The end state of one notification request (exactly one per request)."""

    EVENT_TYPE = "notification.outcome"
    VERSION = 1

    notification_id: Annotated[str, Field(min_length=1, max_length=200)]
    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    status: Literal["sent", "failed", "suppressed", "expired"]
    channel: Channel
    audience: Literal["lead", "rep", "manager"]
    attempts: Annotated[int, Field(ge=0)]
    completed_at: UtcDatetime
    provider_response: Annotated[Annotated[str, Field(max_length=2000)] | None, PERSONAL] = None
    error: Annotated[Annotated[str, Field(max_length=2000)] | None, PERSONAL] = None
    template: Text | None = None
    assignment_id: Text | None = None
