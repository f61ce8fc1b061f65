"""``lead.stage_changed`` version 1."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.base import Payload, Stage, UtcDatetime

Text = Annotated[str, Field(max_length=500)]


class LeadStageChanged(Payload):
    """A lead moved between lifecycle stages, with the reason."""

    EVENT_TYPE = "lead.stage_changed"
    VERSION = 1

    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    from_stage: Stage | None
    to_stage: Stage
    reason: Text
    changed_at: UtcDatetime
    trigger_event_id: Text | None = None
    #: When the lead's cadence next touches it, as of this change (added in place: optional).
    #: None: no touch scheduled (or the event predates the field).
    next_touch_at: UtcDatetime | None = None
