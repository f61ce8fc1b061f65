"""An erased person: remembered only by keyed hashes of their addresses, never contacted for
marketing again unless they opt in again after the erasure, and redacted from what we wrote.

Rules:
- a lead message to an erased address is refused when it is marketing, unless it rests on
  consent given *after* the erasure (a new capture with the box ticked);
- a transactional message (the reply to the person's own new request) and staff alerts go;
- a dev outbox line sent to the person, or about them (a rep alert names them), keeps only ids
  (notification, lead), channel, template, time and a staff recipient: the person's address,
  the subject and the text are gone. The person's lead ids are those the request names and
  those of the lines sent to their addresses.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
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


def _to_them(entry: dict[str, Any], addresses: Collection[str]) -> bool:
    to = entry.get("to")
    return isinstance(to, str) and to.strip().lower() in addresses


def their_lead_ids(entries: Iterable[dict[str, Any]], addresses: Collection[str]) -> set[str]:
    """Lead ids of the lines sent to the person's (normalised) addresses."""
    return {str(e["lead_id"]) for e in entries if e.get("lead_id") and _to_them(e, addresses)}


def outbox_line_is_theirs(entry: dict[str, Any], addresses: Collection[str], lead_ids: Collection[str]) -> bool:
    """An outbox line written to one of the person's addresses, or about one of their leads."""
    return _to_them(entry, addresses) or entry.get("lead_id") in lead_ids


def redact_outbox_line(entry: dict[str, Any]) -> dict[str, Any]:
    """The line with only its non-personal fields; a staff recipient (a rep) stays."""
    out = {k: entry[k] for k in KEPT_FIELDS if k in entry}
    out["to"] = REDACTED if entry.get("audience", "lead") == "lead" else entry.get("to")
    out["erased"] = True
    return out
