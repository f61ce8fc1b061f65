"""``person.erased``: one service's receipt for an erasure, with no personal data in it."""

from schemas.person_erased.v1 import PersonErased

#: The current version of this event: consumers and producers name ``Current`` (or ``PersonErased``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = PersonErased

__all__ = ["Current", "PersonErased"]
