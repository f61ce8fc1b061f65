"""``lead.captured``: a capture source saw a person (form post, badge scan, referral, import)."""
