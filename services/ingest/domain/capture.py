"""The capture-source contract: every way a lead comes in (a web form, a booth's scanner app or
export upload, ...) parses its input into ``Captured`` items, a ``LeadCaptured`` payload and the
record key it is published under. The key is computed here, once, for every source:

- a booth scan is keyed by show + badge: every scan of one badge at one show is one lead, in
  order on one partition, whatever else (an email, a phone) the badge carries;
- any other capture by its normalised email, else its phone (with the form's default region).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.base import SourceKind
from schemas.identity import identity_key
from schemas.lead_captured.v1 import LeadCaptured


@dataclass(frozen=True, slots=True)
class Captured:
    """A capture ready to publish: the payload and its record key."""

    payload: LeadCaptured
    key: str


def capture_key(capture: LeadCaptured, *, default_region: str | None = None) -> str:
    """The record key of ``capture`` (raises ``ValueError`` when nothing identifies the person)."""
    ident = capture.identity
    if capture.source_kind == SourceKind.BOOTH_SCAN and ident.show_id and ident.badge_id:
        return identity_key(show_id=ident.show_id, badge_id=ident.badge_id)
    return identity_key(email=ident.email, phone=ident.phone, default_region=default_region)


def keyed(capture: LeadCaptured, *, default_region: str | None = None) -> Captured:
    return Captured(capture, capture_key(capture, default_region=default_region))


def wording_version(text: str | None, configured: str | None = None) -> str | None:
    """The version of a consent wording, for ``Consent.text_version``: ``configured`` when the
    source names one, else ``sha256:`` and 16 hex digits of the text (None without a text)."""
    if configured:
        return configured[:500]
    if not text:
        return None
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
