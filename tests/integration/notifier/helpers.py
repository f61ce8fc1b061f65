"""Requests as the notifier receives them: an envelope plus the raw record it came in."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from leadpipe.runtime.stream import RawMessage
from schemas.codec import decode, encode
from schemas.envelope import Envelope, new_event
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested

LEAD = {
    "name": "Dana Lee",
    "company": "Example Corp",
    "title": "Director of Operations",
    "grade": "A",
    "score": 72.5,
    "reasons": ["Director-level title", "500+ employees", "Urgent need", "In served area"],
    "source": "web_form",
}


def rep_alert_vars() -> dict[str, Any]:
    return {
        "lead": LEAD,
        "accept_url": "http://127.0.0.1:8080/v1/assignments/tok/accept",
        "decline_url": "http://127.0.0.1:8080/v1/assignments/tok/decline",
        "accept_by": "2026-05-04T09:45:02Z",
    }


def clear_of_window_end(window_s: int = 3600, margin_s: float = 120.0) -> Callable[[], float]:
    """A notifier clock for a test that counts sends within one recipient window. The windows are
    fixed on the clock (``int(now // window_s)``), so a test that ran across a window's end saw its
    count start again (it failed once at 17:00 UTC). This clock is real time, moved on to just past
    the next window's start when less than ``margin_s`` of the current one is left: never behind
    real time, and never within ``margin_s`` of a window's end."""
    now = time.time()
    left = window_s - now % window_s
    offset = left + 1.0 if left < margin_s else 0.0
    return lambda: time.time() + offset


def request(
    *,
    channel: str = "email",
    address: str = "ana@sales.example",
    audience: str = "rep",
    template: str = "rep_alert",
    variables: dict[str, Any] | None = None,
    synthetic: bool = False,
    nid: str | None = None,
    **fields: Any,
) -> tuple[Envelope[Any], RawMessage]:
    now = datetime.now(UTC)
    if audience == "lead":
        # As nurture sends a lead touch: with the consent it rests on (pass consent=None for none).
        fields.setdefault("consent", {"channels": [channel], "basis": "consent", "given_at": now})
    data = NotificationRequested(
        notification_id=nid or f"n-{uuid.uuid4().hex[:12]}",
        lead_id="ld_test",
        audience=audience,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        recipient={"address": address, "name": "Ana"},  # type: ignore[arg-type]
        template=template,
        variables=rep_alert_vars() if variables is None else variables,
        requested_at=now,
        **fields,
    )
    event = new_event(data, source="/tests", subject="ld_test", synthetic=synthetic)
    record = encode(event)
    return event, RawMessage("notification.requested.v1", 0, 7, record.key, record.value, record.headers)


def engagement(kind: str, *, email: str | None = None, phone: str | None = None, **fields: Any) -> Envelope[Any]:
    data = LeadEngagement(
        engagement_id=f"e-{uuid.uuid4().hex[:8]}",
        kind=kind,  # type: ignore[arg-type]
        occurred_at=datetime.now(UTC) - timedelta(seconds=1),
        identity={"email": email, "phone": phone},  # type: ignore[arg-type]
        **fields,
    )
    return new_event(data, source="/tests", subject="ik")


def outcomes(records: list[Any]) -> list[NotificationOutcome]:
    return [decode(r.value, r.headers, NotificationOutcome).data for r in records]


def as_raw(topic: str, record: Any) -> RawMessage:
    return RawMessage(topic, 0, 0, record.key, record.value, record.headers)
