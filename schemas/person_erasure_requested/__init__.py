"""``person.erasure_requested``: a person asked to be erased (GDPR Art. 17, PIPL Art. 47)."""

from schemas.person_erasure_requested.v1 import PersonErasureRequested

#: The current version of this event: consumers and producers name ``Current`` (or ``PersonErasureRequested``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = PersonErasureRequested

__all__ = ["Current", "PersonErasureRequested"]
