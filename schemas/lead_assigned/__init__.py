"""``lead.assigned``: a sales-ready lead was given to a named salesperson."""

from schemas.lead_assigned.v1 import LeadAssigned

#: The current version of this event: consumers and producers name ``Current`` (or ``LeadAssigned``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = LeadAssigned

__all__ = ["Current", "LeadAssigned"]
