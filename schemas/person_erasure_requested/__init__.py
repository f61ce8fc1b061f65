"""``person.erasure_requested``: a person asked to be erased (GDPR Art. 17, PIPL Art. 47)."""
