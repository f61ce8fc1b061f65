"""``assignment.response``: a salesperson accepted or declined an assignment."""

from schemas.assignment_response.v1 import AssignmentResponse

#: The current version of this event: consumers and producers name ``Current`` (or ``AssignmentResponse``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = AssignmentResponse

__all__ = ["AssignmentResponse", "Current"]
