"""``lead.assigned`` version 1."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Payload, UtcDatetime

Text = Annotated[str, Field(max_length=500)]


class LeadAssigned(Payload):
    """A lead was assigned to a salesperson, who must accept before ``accept_by``."""

    EVENT_TYPE = "lead.assigned"
    VERSION = 1

    assignment_id: Annotated[str, Field(min_length=1, max_length=200)]
    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    rep_id: Text
    rep_name: Text | None = None
    team: Text | None = None
    manager_id: Text | None = None
    rule: Literal["account_owner", "territory", "language", "rotation", "core_account", "manual"]
    attempt: Annotated[int, Field(ge=1)] = 1
    previous_rep_id: Text | None = None
    reason: Text
    assigned_at: UtcDatetime
    accept_by: UtcDatetime
