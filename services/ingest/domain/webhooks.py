"""Engagement webhooks: signature check (HMAC-SHA256 over ``timestamp.body``, within a time
window) and mapping provider events to ``LeadEngagement``."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.base import Channel, EngagementKind, UtcDatetime
from schemas.identity import identity_key
from schemas.lead_captured.v1 import Identity
from schemas.lead_engagement.v1 import LeadEngagement
from services.ingest.domain.errors import FieldProblem, IngestError, InvalidInput

SIGNATURE_PREFIX = "v1="

#: Provider vocabularies differ; these are the words we accept for each kind.
KIND_ALIASES: dict[str, EngagementKind] = {
    "opened": EngagementKind.EMAIL_OPENED,
    "open": EngagementKind.EMAIL_OPENED,
    "clicked": EngagementKind.EMAIL_CLICKED,
    "click": EngagementKind.EMAIL_CLICKED,
    "replied": EngagementKind.EMAIL_REPLIED,
    "reply": EngagementKind.EMAIL_REPLIED,
    "bounced": EngagementKind.EMAIL_BOUNCED,
    "bounce": EngagementKind.EMAIL_BOUNCED,
    "complaint": EngagementKind.COMPLAINED,
    "spam_report": EngagementKind.COMPLAINED,
    "unsubscribe": EngagementKind.UNSUBSCRIBED,
    "meeting": EngagementKind.MEETING_BOOKED,
    "visit": EngagementKind.PAGE_VISIT,
} | {k.value: k for k in EngagementKind}


class BadSignature(IngestError):
    """Missing, forged, stale or replayed signature (``reason`` says which)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value a provider sends (also used by tests and the demo)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + mac


def verify_signature(
    secret: str, *, timestamp: str | None, signature: str | None, body: bytes, now: float, window_s: float
) -> int:
    """The request's timestamp if the signature is valid and fresh; raises ``BadSignature``."""
    if not timestamp or not signature:
        raise BadSignature("missing signature or timestamp header")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise BadSignature("timestamp is not unix seconds") from exc
    if abs(now - ts) > window_s:
        raise BadSignature("timestamp outside the allowed window")
    expected = sign(secret, ts, body)
    if not any(hmac.compare_digest(expected, part.strip()) for part in signature.split(",")):
        raise BadSignature("signature does not match")
    return ts


class WebhookEvent(BaseModel):
    """One engagement event in a provider's post."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=200)]
    kind: str
    occurred_at: UtcDatetime
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    lead_id: Annotated[str, Field(max_length=500)] | None = None
    channel: Channel = Channel.EMAIL
    notification_id: Annotated[str, Field(max_length=500)] | None = None
    bounce_type: Literal["hard", "soft"] | None = None
    url: Annotated[str, Field(max_length=2000)] | None = None
    detail: Annotated[str, Field(max_length=2000)] | None = None


@dataclass(frozen=True, slots=True)
class Engagement:
    key: str
    payload: LeadEngagement


def parse_events(provider: str, body: Any) -> list[Engagement]:
    """A post holds one event or ``{"events": [...]}``; raises ``InvalidInput`` naming each bad field."""
    items = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    if not isinstance(items, list) or not items:
        raise InvalidInput([FieldProblem("events", "must be a non-empty list of events")])
    out: list[Engagement] = []
    problems: list[FieldProblem] = []
    for i, item in enumerate(items):
        prefix = f"events[{i}]" if len(items) > 1 or "events" in (body or {}) else ""
        try:
            ev = WebhookEvent.model_validate(item)
        except ValidationError as exc:
            problems.extend(
                FieldProblem(".".join(x for x in (prefix, *(str(p) for p in err["loc"])) if x), err["msg"])
                for err in exc.errors(include_url=False)
            )
            continue
        kind = KIND_ALIASES.get(ev.kind.strip().lower())
        if kind is None:
            problems.append(FieldProblem(f"{prefix}.kind".lstrip("."), f"unknown engagement kind {ev.kind!r}"))
            continue
        if not ev.email and not ev.phone:
            problems.append(FieldProblem(f"{prefix}.email".lstrip("."), "an email or a phone is required"))
            continue
        out.append(
            Engagement(
                key=identity_key(email=ev.email, phone=ev.phone),
                payload=LeadEngagement(
                    engagement_id=f"{provider}:{ev.id}",
                    kind=kind,
                    occurred_at=ev.occurred_at,
                    identity=Identity(email=ev.email, phone=ev.phone, external_id=ev.lead_id),
                    channel=ev.channel,
                    provider=provider,
                    notification_id=ev.notification_id,
                    bounce_type=ev.bounce_type,
                    url=ev.url,
                    detail=ev.detail,
                ),
            )
        )
    if problems:
        raise InvalidInput(problems)
    return out


def unsubscribe_engagement(claims: dict[str, Any], *, now: datetime, method: str) -> Engagement:
    """The engagement recorded when a lead follows an unsubscribe link (claims lid, ch, addr)."""
    channel = Channel(claims["ch"])
    address = str(claims["addr"])
    email = address if channel == Channel.EMAIL else None
    phone = None if email else address
    return Engagement(
        key=identity_key(email=email, phone=phone),
        payload=LeadEngagement(
            engagement_id=f"unsubscribe:{claims['lid']}:{channel.value}",
            kind=EngagementKind.UNSUBSCRIBED,
            occurred_at=now,
            identity=Identity(email=email, phone=phone, external_id=str(claims["lid"])),
            channel=channel,
            provider="leadpipe",
            detail=f"unsubscribe link ({method})",
        ),
    )
