"""``lead.scored``: the current grade of a lead, with the reasons behind it."""

from schemas.lead_scored.v1 import LeadScored

#: The current version of this event: consumers and producers name ``Current`` (or ``LeadScored``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = LeadScored

__all__ = ["Current", "LeadScored"]
