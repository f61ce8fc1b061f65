"""Which engagement signals put an address on the suppression list, and how addresses are
compared (so "Dana@Example.com" and "dana@example.com " are the same person)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NOT_PHONE = re.compile(r"[^\d+]")


@dataclass(frozen=True, slots=True)
class Suppression:
    channel: str
    address: str
    reason: str


def normalize_address(channel: str, address: str) -> str:
    value = address.strip()
    if channel == "email":
        return value.lower()
    if channel in ("sms", "phone"):
        digits = _NOT_PHONE.sub("", value)
        return digits if digits.startswith("+") else digits.lstrip("0")
    return value


def suppressions_for(
    *, kind: str, channel: str, bounce_type: str | None, email: str | None, phone: str | None
) -> list[Suppression]:
    """Unsubscribes and complaints stop the channel they came from; a hard bounce stops the
    email address. Everything else (opens, clicks, soft bounces...) suppresses nothing."""
    if kind == "email_bounced":
        if bounce_type != "hard" or not email:
            return []
        return [Suppression("email", normalize_address("email", email), "hard_bounce")]
    if kind not in ("unsubscribed", "complained"):
        return []
    if channel == "email" and email:
        return [Suppression("email", normalize_address("email", email), kind)]
    if channel in ("sms", "phone") and phone:
        number = normalize_address("sms", phone)
        return [Suppression("sms", number, kind), Suppression("phone", number, kind)]
    return []
