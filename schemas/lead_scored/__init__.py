"""``lead.scored``: the current grade of a lead, with the reasons behind it."""
