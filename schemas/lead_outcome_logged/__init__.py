"""``lead.outcome_logged``: a salesperson recorded that a lead is not interested or the deal is lost."""
