"""``lead.engagement`` version 1."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Channel, EngagementKind, Payload, UtcDatetime
from schemas.lead_captured.v1 import Identity
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]


class LeadEngagement(Payload):
    """A signal from a known lead: email opened/clicked/replied, bounce, complaint, visit..."""

    EVENT_TYPE = "lead.engagement"
    VERSION = 1

    engagement_id: Annotated[str, Field(min_length=1, max_length=200)]
    kind: EngagementKind
    occurred_at: UtcDatetime
    identity: Identity
    channel: Channel = Channel.EMAIL
    provider: Text | None = None
    notification_id: Text | None = None
    bounce_type: Literal["hard", "soft"] | None = None
    url: Annotated[Annotated[str, Field(max_length=2000)] | None, PERSONAL] = None
    detail: Annotated[Annotated[str, Field(max_length=2000)] | None, PERSONAL] = None
