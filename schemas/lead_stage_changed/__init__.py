"""``lead.stage_changed``: a lead moved from one lifecycle stage to another."""
