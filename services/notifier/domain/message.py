"""What a channel sends and what it answers: plain data shared by the handler and the adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SendStatus = Literal["ok", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered message, ready for any channel.

    Email uses ``subject``, ``text``, ``html`` and ``headers``; SMS and Slack use ``short``;
    the generic webhook sends ``data`` (the request's facts) plus the rendered text.
    ``notification_id`` doubles as the idempotency key every adapter passes to its provider.
    """

    notification_id: str
    lead_id: str
    channel: str
    audience: str
    template: str
    locale: str
    to: str
    to_name: str | None
    subject: str
    text: str
    short: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    """A provider's answer: ``ok``, or a failure that is worth retrying (``transient``) or not.

    ``error_kind`` is a small fixed vocabulary (timeout, connection, rate_limited, server_error,
    client_error, smtp_4xx, smtp_5xx) used as a metric label; ``response`` is the provider's
    text for the outcome event.
    """

    status: SendStatus
    response: str
    error_kind: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"
