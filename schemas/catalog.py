"""Every event type and version the pipeline knows, and the upcasters between versions.

A released version is never edited except by adding optional fields. A breaking change is
a new module (``v2.py``), a new topic suffix, and an upcaster registered in ``UPCASTERS``
that turns the old payload dict into the new shape, so old records keep decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import Payload
from schemas.lead_assigned.v1 import LeadAssigned
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.lead_scored.v1 import LeadScored
from schemas.lead_stage_changed.v1 import LeadStageChanged
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested
from schemas.person_erased.v1 import PersonErased
from schemas.person_erasure_requested.v1 import PersonErasureRequested

PAYLOADS: tuple[type[Payload], ...] = (
    LeadCaptured,
    LeadEngagement,
    LeadScored,
    LeadStageChanged,
    LeadAssigned,
    AssignmentResponse,
    LeadOutcomeLogged,
    NotificationRequested,
    NotificationOutcome,
    PersonErasureRequested,
    PersonErased,
)

#: dataschema -> payload model
BY_DATASCHEMA: dict[str, type[Payload]] = {p.dataschema(): p for p in PAYLOADS}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: old dataschema -> (new payload model, function turning the old payload into the new one)
UPCASTERS: dict[str, tuple[type[Payload], Upcaster]] = {}


def payload_for(dataschema: str) -> type[Payload] | None:
    return BY_DATASCHEMA.get(dataschema)
