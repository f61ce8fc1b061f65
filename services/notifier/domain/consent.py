"""Consent at send time (defence in depth behind nurture): a marketing message to a lead goes
only on a channel its request's consent basis covers. Transactional messages (a reply to the
person's own request, staff alerts) are not gated.

Each template's purpose comes from the template catalog; a template missing from it counts as
marketing, so a new template is gated until someone says otherwise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from schemas.notification_outcome.v1 import NO_CONSENT_ERROR

Purpose = Literal["marketing", "transactional"]
PURPOSES: frozenset[str] = frozenset({"marketing", "transactional"})


def purpose_of(template: str, catalog: Mapping[str, Purpose]) -> Purpose:
    return catalog.get(template, "marketing")


def consent_refusal(
    *, purpose: Purpose, audience: str, channel: str, basis_channels: Iterable[str] | None
) -> str | None:
    """Why the message may not go (None: it may). ``basis_channels`` None: the request carries no basis."""
    if purpose != "marketing" or audience != "lead":
        return None
    if basis_channels is None or channel not in set(basis_channels):
        return f"{NO_CONSENT_ERROR} {channel!r}"
    return None
