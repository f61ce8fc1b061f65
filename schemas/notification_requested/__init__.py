"""``notification.requested``: nurture asks the notifier to send one message."""

from schemas.notification_requested.v1 import NotificationRequested

#: The current version of this event: consumers and producers name ``Current`` (or ``NotificationRequested``
#: from here), so a new major version is one line here plus its upcaster (schemas/catalog.py).
Current = NotificationRequested

__all__ = ["Current", "NotificationRequested"]
