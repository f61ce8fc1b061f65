"""Every event type and version the pipeline knows, and the upcasters between versions.

A released version is never edited except by adding optional fields. A breaking change is
a new module (``v2.py``), a new topic suffix, and an upcaster registered in ``UPCASTERS``
that turns the old payload dict into the new shape, so old records keep decoding. Adding v2:

1. ``schemas/<event>/v2.py`` with the new model (``VERSION = 2``); add it to ``PAYLOADS``.
2. ``UPCASTERS[V1.dataschema()] = (V2, v1_to_v2)``: the only place old payloads are reshaped
   (``resolve`` chains upcasters, so v1 -> v2 -> v3 needs no v1 -> v3 function).
3. Point the package's ``Current`` alias (``schemas/<event>/__init__.py``) at v2: every
   consumer that asks for ``Current`` now gets v1 records upcast to v2.
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


#: event type -> its newest released model (what each package's ``Current`` alias names)
CURRENT: dict[str, type[Payload]] = {}
for _payload in PAYLOADS:
    if _payload.EVENT_TYPE not in CURRENT or CURRENT[_payload.EVENT_TYPE].VERSION < _payload.VERSION:
        CURRENT[_payload.EVENT_TYPE] = _payload


def resolve(
    dataschema: str, expected: type[Payload] | None = None
) -> tuple[type[Payload], tuple[Upcaster, ...]] | None:
    """The model a record of ``dataschema`` decodes into, and the upcasters that take its payload
    there (none when it decodes as it is). ``None``: no model and no upcaster for it.

    A record of a model we know decodes as that model, unless ``expected`` names a newer version
    an upcaster chain leads to. A record of a version we no longer have a model for is upcast to
    the end of its chain (or to ``expected``, if the chain passes it).
    """
    model = BY_DATASCHEMA.get(dataschema)
    if model is not None and (expected is None or model is expected):
        return model, ()
    steps: list[Upcaster] = []
    end: tuple[type[Payload], tuple[Upcaster, ...]] | None = None
    here, seen = dataschema, {dataschema}
    while here in UPCASTERS:
        target, upcast = UPCASTERS[here]
        steps.append(upcast)
        end = (target, tuple(steps))
        if target is expected:
            return end
        here = target.dataschema()
        if here in seen:
            raise ValueError(f"upcaster cycle through {here}")
        seen.add(here)
    return (model, ()) if model is not None else end
