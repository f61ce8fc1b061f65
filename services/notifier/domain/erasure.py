"""An erased person: remembered only by keyed hashes of their addresses, never contacted for
marketing again unless they opt in again after the erasure, and redacted from what we wrote.

Rules:
- a lead message to an erased address is refused when it is marketing, unless it rests on
  consent given *after* the erasure (a new capture with the box ticked);
- a transactional message (the reply to the person's own new request) and staff alerts go;
- a dev outbox line sent to the person keeps only ids (notification, lead), channel, template
  and time: the address, subject and text are gone.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

ERASED_ERROR = "address erased on request; marketing needs new consent"
REDACTED = "[erased]"
#: outbox line fields that are not personal data
KEPT_FIELDS = ("at", "notification_id", "lead_id", "channel", "audience", "template", "locale")


def erased_refusal(
    *,
    purpose: str,
    audience: str,
    erased_at: datetime | None,
    basis: str | None,
    consent_given_at: datetime | None,
) -> str | None:
    """Why a message may not go to an erased address (None: it may)."""
    if erased_at is None or audience != "lead" or purpose != "marketing":
        return None
    if basis == "consent" and consent_given_at is not None and consent_given_at > erased_at:
        return None
    return ERASED_ERROR


def outbox_line_is_theirs(entry: dict[str, Any], addresses: Collection[str], lead_ids: Collection[str]) -> bool:
    """An outbox line written to one of the person's (normalised) addresses or about their lead."""
    to = entry.get("to")
    if isinstance(to, str) and to.strip().lower() in addresses:
        return True
    return entry.get("lead_id") in lead_ids and entry.get("audience") == "lead"


def redact_outbox_line(entry: dict[str, Any]) -> dict[str, Any]:
    """The line with only its non-personal fields and the address replaced."""
    out = {k: entry[k] for k in KEPT_FIELDS if k in entry}
    out["to"] = REDACTED
    out["erased"] = True
    return out
