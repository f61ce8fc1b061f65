"""``assignment.response`` version 1."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Payload, UtcDatetime
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]


class AssignmentResponse(Payload):
    """A salesperson's answer to an assignment (from the signed accept/decline link)."""

    EVENT_TYPE = "assignment.response"
    VERSION = 1

    assignment_id: Annotated[str, Field(min_length=1, max_length=200)]
    lead_id: Annotated[str, Field(min_length=1, max_length=200)]
    rep_id: Text
    response: Literal["accepted", "declined"]
    responded_at: UtcDatetime
    note: Annotated[Annotated[str, Field(max_length=2000)] | None, PERSONAL] = None
