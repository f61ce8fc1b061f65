"""``lead.stage_changed``: a lead moved from one lifecycle stage to another."""

from schemas.lead_stage_changed.v1 import LeadStageChanged

#: The current version of this event: consumers and producers name ``Current`` (or ``LeadStageChanged``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = LeadStageChanged

__all__ = ["Current", "LeadStageChanged"]
