"""``lead.engagement``: something a known lead did (opened, replied, unsubscribed, ...)."""
