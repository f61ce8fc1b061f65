"""``lead.captured``: a capture source saw a person (form post, badge scan, referral, import)."""

from schemas.lead_captured.v1 import LeadCaptured

#: The current version of this event: consumers and producers name ``Current`` (or ``LeadCaptured``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = LeadCaptured

__all__ = ["Current", "LeadCaptured"]
