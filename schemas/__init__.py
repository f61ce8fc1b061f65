"""Versioned event schemas: the only code the leadpipe services share.

Payload models (one module per event type and major version), the CloudEvents envelope,
the Kafka record codec, the topic registry and identity-key normalisation.
"""

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import (
    BoothRating,
    Channel,
    EngagementKind,
    Grade,
    Payload,
    SourceKind,
    Stage,
)
from schemas.codec import Record, decode, decode_record, encode
from schemas.envelope import Envelope, new_event
from schemas.errors import DecodeError, RecordTooLarge, SchemaError, UnknownEventType
from schemas.lead_assigned.v1 import LeadAssigned
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_scored.v1 import LeadScored
from schemas.lead_stage_changed.v1 import LeadStageChanged
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested

__all__ = [
    "AssignmentResponse",
    "BoothRating",
    "Channel",
    "DecodeError",
    "EngagementKind",
    "Envelope",
    "Grade",
    "LeadAssigned",
    "LeadCaptured",
    "LeadEngagement",
    "LeadScored",
    "LeadStageChanged",
    "NotificationOutcome",
    "NotificationRequested",
    "Payload",
    "Record",
    "RecordTooLarge",
    "SchemaError",
    "SourceKind",
    "Stage",
    "UnknownEventType",
    "decode",
    "decode_record",
    "encode",
    "new_event",
]
