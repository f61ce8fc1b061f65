"""``lead.outcome_logged`` version 1."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Payload, UtcDatetime
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]


class LeadOutcomeLogged(Payload):
    """A salesperson recorded how a lead ended, for outcomes no engagement carries: the lead is
    not interested (nurture disqualifies it) or the deal is lost (nurture recycles it for a later
    effort). Either stops the cadence. Reached, meeting booked and won travel as
    ``lead.engagement`` (replied, meeting_booked, purchased), which scoring also counts."""

    EVENT_TYPE = "lead.outcome_logged"
    VERSION = 1

    outcome_id: Annotated[str, Field(min_length=1, max_length=200)]
    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    rep_id: Text
    outcome: Literal["not_interested", "lost"]
    logged_at: UtcDatetime
    note: Annotated[Annotated[str, Field(max_length=2000)] | None, PERSONAL] = None
