"""``notification.requested`` version 1."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.base import Channel, MarketingBasis, Part, Payload, UtcDatetime
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]


class Recipient(Part):
    """Who receives the message: an address on the request's channel."""

    address: Annotated[str, Field(min_length=1, max_length=2000), PERSONAL]
    name: Annotated[Text | None, PERSONAL] = None
    rep_id: Text | None = None
    timezone: Text | None = None


class TouchRef(Part):
    """Where this message sits in a cadence (absent for one-off alerts)."""

    playbook: Text
    playbook_version: Text
    step: Annotated[int, Field(ge=0)]
    cadence: Text | None = None


class NotificationRequested(Payload):
    """One message to send. ``notification_id`` is stable: a retry carries the same id."""

    EVENT_TYPE = "notification.requested"
    VERSION = 1

    notification_id: Annotated[str, Field(min_length=1, max_length=200)]
    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    audience: Literal["lead", "rep", "manager"]
    channel: Channel
    recipient: Recipient
    template: Annotated[str, Field(min_length=1, max_length=200)]
    locale: Annotated[str, Field(max_length=35)] = "en"
    variables: Annotated[dict[str, Any], PERSONAL] = Field(default_factory=dict)
    requested_at: UtcDatetime
    not_before: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None
    priority: Literal["high", "normal", "low"] = "normal"
    touch: TouchRef | None = None
    assignment_id: Text | None = None
    lead_captured_at: UtcDatetime | None = None
    #: The basis a marketing message relies on (added in place: optional). The notifier refuses a
    #: marketing template whose basis does not cover ``channel``; transactional ones need none.
    consent: MarketingBasis | None = None
    #: When the lead's cadence next touches it, as of this request (added in place: optional; the
    #: console shows it). None: no touch scheduled (or the event predates the field).
    next_touch_at: UtcDatetime | None = None
