"""``lead.engagement``: something a known lead did (opened, replied, unsubscribed, ...)."""

from schemas.lead_engagement.v1 import LeadEngagement

#: The current version of this event: consumers and producers name ``Current`` (or ``LeadEngagement``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = LeadEngagement

__all__ = ["Current", "LeadEngagement"]
