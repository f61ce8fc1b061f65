"""``notification.outcome``: what happened to a requested notification."""

from schemas.notification_outcome.v1 import NotificationOutcome

#: The current version of this event: consumers and producers name ``Current`` (or ``NotificationOutcome``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = NotificationOutcome

__all__ = ["Current", "NotificationOutcome"]
