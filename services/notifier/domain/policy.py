"""Delivery rules: what to do with a request before sending, how to read a provider's
answer, and when (and whether) to try again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from services.notifier.domain.message import SendResult, SendStatus

SYNTHETIC_RESPONSE = "synthetic: not delivered"

#: Alerts to our own salespeople and managers are work instructions, not marketing.
INTERNAL_AUDIENCES = frozenset({"rep", "manager"})
LimitScope = Literal["lead", "internal"]


class Action(StrEnum):
    SEND = "send"
    SYNTHETIC = "synthetic"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""
    until: datetime | None = None


def before_send(
    *,
    now: datetime,
    synthetic: bool,
    expires_at: datetime | None,
    not_before: datetime | None,
    suppressed_reason: str | None,
    consent_refusal: str | None = None,
) -> Decision:
    """The first rule that applies: canaries are never delivered; an expired request is not
    sent; a suppressed address is never contacted; nor is a lead on a channel its marketing
    consent does not cover; a request early for ``not_before`` waits."""
    if synthetic:
        return Decision(Action.SYNTHETIC, SYNTHETIC_RESPONSE)
    if expires_at is not None and expires_at <= now:
        return Decision(Action.EXPIRED, f"expired at {expires_at.isoformat()}")
    if suppressed_reason is not None:
        return Decision(Action.SUPPRESSED, f"address suppressed: {suppressed_reason}")
    if consent_refusal is not None:
        return Decision(Action.SUPPRESSED, consent_refusal)
    if not_before is not None and not_before > now:
        return Decision(Action.DEFER, "not before", not_before)
    return Decision(Action.SEND)


def limit_scope(audience: str) -> LimitScope:
    """Which per-recipient limit a message counts against. The lead-facing cap protects people
    who bought nothing yet from being flooded; a rep's or a manager's alert is transactional and
    never waits behind it (a flooded rep is a routing and capacity matter, handled in nurture).
    Internal recipients have their own, much higher, safety limit and their own counters."""
    return "internal" if audience in INTERNAL_AUDIENCES else "lead"


def classify_http(status: int) -> tuple[SendStatus, str | None]:
    """(send status, error kind) of an HTTP provider answer: 408/425/429 and 5xx are
    transient; any other 4xx is permanent."""
    if 200 <= status < 300:
        return "ok", None
    if status == 429:
        return "transient", "rate_limited"
    if status in (408, 425):
        return "transient", "timeout"
    if status >= 500:
        return "transient", "server_error"
    return "permanent", "client_error"


def classify_smtp(code: int) -> tuple[SendStatus, str | None]:
    """SMTP reply codes: 2xx ok, 4xx transient (try later), 5xx permanent."""
    if 200 <= code < 400:
        return "ok", None
    if 400 <= code < 500:
        return "transient", "smtp_4xx"
    return "permanent", "smtp_5xx"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 2.0
    cap_s: float = 300.0

    def delay_s(self, attempt: int, jitter: float, retry_after_s: float | None = None) -> float:
        """Exponential backoff with jitter after failed attempt number ``attempt`` (1-based).

        ``jitter`` in [0, 1) spreads retries between half and all of the exponential step, so
        a burst of failures does not come back as a burst. A provider's Retry-After is a floor.
        """
        step = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        delay = step * (0.5 + 0.5 * jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cap_s))
        return float(delay)


@dataclass(frozen=True, slots=True)
class AfterFailure:
    retry_at: datetime | None
    dead_letter: bool


def after_failure(
    result: SendResult, *, attempt: int, policy: RetryPolicy, now: datetime, jitter: float
) -> AfterFailure:
    """A permanent failure ends at once; a transient one is retried until the last attempt,
    after which the request is dead-lettered."""
    if result.status == "permanent":
        return AfterFailure(None, dead_letter=False)
    if attempt >= policy.max_attempts:
        return AfterFailure(None, dead_letter=True)
    delay = policy.delay_s(attempt, jitter, result.retry_after_s)
    return AfterFailure(now + timedelta(seconds=delay), dead_letter=False)


def resolve_locale(requested: str, available: set[str], default: str = "en") -> str:
    """The best locale we ship for a requested one: exact (case-insensitive), then the same
    language ("zh" or "zh-TW" -> "zh-CN", "en-GB" -> "en"), then the default."""
    by_lower = {loc.lower(): loc for loc in available}
    wanted = requested.replace("_", "-").lower()
    if wanted in by_lower:
        return by_lower[wanted]
    lang = wanted.split("-", 1)[0]
    same_language = sorted(loc for low, loc in by_lower.items() if low.split("-", 1)[0] == lang)
    if same_language:
        return same_language[0]
    return default
