"""``lead.outcome_logged``: a salesperson recorded that a lead is not interested or the deal is lost."""

from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged

#: The current version of this event: consumers and producers name ``Current`` (or ``LeadOutcomeLogged``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = LeadOutcomeLogged

__all__ = ["Current", "LeadOutcomeLogged"]
