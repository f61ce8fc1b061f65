"""``lead.assigned``: a sales-ready lead was given to a named salesperson."""
